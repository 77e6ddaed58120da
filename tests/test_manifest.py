"""The manifest reader (data/manifest.py) against any JSON at all: a one-line ManifestError or a manifest that the
readers can use, never a traceback. Random values, and random edits of a real manifest (the likelier damage)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wikigpt import Dataset, ManifestError
from wikigpt.data.manifest import check_manifest, read_manifest, write_manifest

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def real(sample_dataset) -> dict:
    return json.loads((sample_dataset / "manifest.json").read_text())


def paths(value, at=()):
    """Every place in a JSON document, as a tuple of keys and indices."""
    yield at
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*at, i))


def replaced(doc, at, new):
    if not at:
        return new
    doc = copy.deepcopy(doc)
    node = doc
    for k in at[:-1]:
        node = node[k]
    node[at[-1]] = new
    return doc


def test_the_real_manifest_passes(real):
    assert check_manifest(real, "m") is real


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_value_is_refused_in_one_line(value):
    try:
        check_manifest(value, "DS/manifest.json")
    except ManifestError as e:
        assert str(e).startswith("DS/manifest.json: invalid manifest: ") and "\n" not in str(e)


def test_a_key_with_a_newline_is_named_on_one_line(real):
    # found by the property test below: free-form keys (bytes counters, dropped reasons) end up in the field path
    doc = replaced(real, ("parts", 0, "bytes"), {"\n\t": None})
    with pytest.raises(ManifestError) as e:
        check_manifest(doc, "DS/manifest.json")
    assert str(e.value).endswith(".bytes.\\n\\t: null, expected an integer") and "\n" not in str(e.value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), new=JSON)
def test_any_edit_of_a_real_manifest_is_refused_or_readable(real, sample_dataset, tmp_path_factory, data, new):
    where = data.draw(st.sampled_from(list(paths(real))))
    doc = replaced(real, where, new)
    try:
        check_manifest(doc, "DS/manifest.json")
    except ManifestError as e:
        assert "\n" not in str(e)
        return
    # it passed: everything that reads only the manifest must work on it
    folder = tmp_path_factory.mktemp("edit")
    (folder / "manifest.json").write_text(json.dumps(doc))
    ds = Dataset(folder)
    ds.status()
    ds.tokens("train"), ds.tokens("val"), ds.disk_bytes(), ds.shard_bytes_per_compressed_byte()
    for p in ds.parts:
        assert not Path(p["dir"]).is_absolute() and ".." not in Path(p["dir"]).parts


def test_read_manifest_names_the_file_for_bytes_that_are_not_json(tmp_path):
    for raw in (b"", b"\xff\xfe\x00", b"[1, 2", b"NaN", b'{"format": "wikigpt-dataset"} trailing'):
        (tmp_path / "manifest.json").write_bytes(raw)
        with pytest.raises(ManifestError, match=rf"^{tmp_path / 'manifest.json'}: (unreadable|invalid) manifest"):
            read_manifest(tmp_path)


def test_write_manifest_refuses_to_write_a_bad_one(tmp_path, real, sample_dataset):
    shutil.copy(sample_dataset / "manifest.json", tmp_path / "manifest.json")
    before = (tmp_path / "manifest.json").read_bytes()
    bad = replaced(real, ("parts", 0, "tokens", "train"), -1)
    with pytest.raises(ManifestError, match=r"parts\[0\] \(enwiki-sample-pages-articles1\)\.tokens\.train: -1, "
                                            r"expected an integer >= 0"):
        write_manifest(tmp_path, bad)
    assert (tmp_path / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("edit, message", [
    ((("parts", 0, "tokens", "train"), 1), r"tokens\.train: 1, but its shards hold \d+ tokens"),
    ((("parts", 0, "files", 0, "sha1"), "XYZ"), r"files\[0\]\.sha1: \"XYZ\" \(a string\), expected 40 lowercase hex"),
    ((("parts", 0, "name"), ".hidden"), r"parts\[0\]\.name: \"\.hidden\" \(a string\), expected a plain file name"),
    ((("parts", 0, "dir"), "/etc"), r"\.dir: \"/etc\" \(a string\), expected a folder inside the dataset folder"),
    ((("parts", 0, "dir"), "parts/a/b"), r"\.dir: \"parts/a/b\" \(a string\), expected a folder inside the dataset "
                                        r"folder: 'parts/NAME'"),
    ((("tokenizer", "encoding"), "cl100k_base"), r"tokenizer\.encoding: \"cl100k_base\" \(a string\); this wikigpt "
                                                 r"reads r50k_base"),
    ((("shard_tokens",), True), r"shard_tokens: true \(a boolean\), expected an integer"),
    ((("split", "val_fraction"), 1.5), r"split\.val_fraction: 1\.5, expected 0 <= x < 1"),
])
def test_the_first_wrong_field_is_named(real, edit, message):
    with pytest.raises(ManifestError, match=message):
        check_manifest(replaced(real, *edit), "m")


def test_a_part_name_or_folder_given_twice_is_refused(real):
    doc = copy.deepcopy(real)
    doc["parts"].append(copy.deepcopy(doc["parts"][0]))
    with pytest.raises(ManifestError, match=r"parts\[1\]\.name: 'enwiki-sample-pages-articles1' appears twice"):
        check_manifest(doc, "m")
    doc["parts"][1]["name"] = "another"
    with pytest.raises(ManifestError, match=r"parts\[1\]\.dir: 'parts/enwiki-sample-pages-articles1' is another "
                                            r"part's folder too"):
        check_manifest(doc, "m")
