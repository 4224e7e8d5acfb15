"""Push a release folder to the Hugging Face Hub. The token comes from HF_TOKEN (or the Hub login
cache) and is never printed or written anywhere."""

from __future__ import annotations

import os
from pathlib import Path


def push(folder: str | Path, repo_id: str, private: bool = True) -> str:
    folder = Path(folder)
    for f in ("config.json", "model.safetensors", "README.md"):
        if not (folder / f).is_file():
            raise FileNotFoundError(f"{folder}: missing {f}; run `fm export` first")
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise PermissionError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`) to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="MAX-FM release")
    return str(info)
