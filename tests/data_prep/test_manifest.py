from pathlib import Path

import pytest
import yaml

from data_prep.manifest import ManifestError, load_manifest


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "plant.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


BASE = {
    "plant_id": "p1",
    "stage": "firing",
    "sharing": "consortium",
    "files": [{"path": "raw.csv", "format": "wide_csv"}],
    "assets": {"a1": 60},
    "tags": [{"name": "T1", "asset": "a1", "kind": "temperature", "unit": "degC", "interval_s": 60, "limits": [0, 100]}],
}


def test_sim_manifests_load(manifests):
    ms = [load_manifest(p) for p in manifests]
    assert {m.plant_id for m in ms} == {"kiln_a", "pump_b", "line_c"}
    kiln = next(m for m in ms if m.plant_id == "kiln_a")
    assert kiln.files[0].delimiter == ";" and kiln.files[0].decimal == ","
    assert kiln.tags[0].limits == (0.0, 1300.0)
    assert {m.sharing for m in ms} <= {"private", "consortium", "public"}


def test_valid_manifest(tmp_path):
    m = load_manifest(_write(tmp_path, BASE))
    assert m.assets == {"a1": 60.0} and m.tags_of("a1")[0].unit == "degC"


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"sharing": "open"}, "key 'sharing' is 'open'"),
        ({"colour": "red"}, "unknown key(s) ['colour']"),
        ({"files": [{"path": "x.csv", "format": "xlsx"}]}, "files[0].format"),
        ({"assets": {"a2": 60}}, "tags[T1].asset"),
        ({"tags": [{"name": "T1", "asset": "a1", "kind": "smell", "unit": "", "interval_s": 1}]}, "tags[T1].kind"),
        ({"tags": [{"name": "T1", "asset": "a1", "kind": "temperature", "unit": "C"}]}, "missing key(s) ['interval_s'] in 'tags[0]'"),
        ({"tags": [{"name": "T1", "asset": "a1", "kind": "temperature", "unit": "C", "interval_s": 1, "limits": [5]}]}, "tags[0].limits"),
    ],
)
def test_manifest_errors_name_file_and_key(tmp_path, patch, needle):
    path = _write(tmp_path, {**BASE, **patch})
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    assert str(path) in str(e.value)
    assert needle in str(e.value)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest file not found"):
        load_manifest(tmp_path / "nope.yaml")
