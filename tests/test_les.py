"""Linear Emotion Space: built from a synthetic prepared data set whose directions are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _les_synthetic import EMOTIONS, LEVEL_SCALE, NORM, build_synthetic_prepared
from lesbench import schema
from lesbench.errors import DatasetError
from lesbench.les.space import LESError, LinearEmotionSpace, build_les, les_hash, parse_mix, parse_units


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("les") / "prepared"
    truth = build_synthetic_prepared(root)
    return root, truth


@pytest.fixture(scope="module")
def space(synthetic):
    return build_les(synthetic[0])


def test_directions_match_ground_truth(space, synthetic):
    _, truth = synthetic
    assert space.emotions == sorted(EMOTIONS)
    for e in EMOTIONS:
        d = space.directions[e]
        assert abs(np.linalg.norm(d.direction) - 1) < 1e-9
        assert float(d.direction @ truth["directions"][e]) > 0.995, e
        # speaker gains are U(0.9, 1.1) around 1: the median norm lands near the true norm
        assert d.norm == pytest.approx(NORM[e], rel=0.08)
        # the prototype AUs are the largest components
        tops = {au for au, _ in d.top_aus(len(schema.FACS_PROTOTYPES[e]))}
        assert tops == set(schema.FACS_PROTOTYPES[e])


def test_level_scales_linearity_monotonicity(space):
    for e in EMOTIONS:
        d = space.directions[e]
        assert d.monotonic is True and d.speaker_monotonic == 1.0
        assert d.r2 > 0.95
        for k in (1, 2):
            assert d.level_fraction(k) == pytest.approx(LEVEL_SCALE[k], abs=0.03)


def test_neutral_refs_are_train_only(space, synthetic):
    _, truth = synthetic
    train = sorted(s for s, split in truth["speakers"].items() if split == "train")
    assert sorted(space.neutral_refs) == train
    for s in train:
        # neutral clips carry only noise, blinks (AU45) and the speech signal around the reference
        keep = [i for i, au in enumerate(schema.AU_NAMES) if au not in ("AU45", "AU25", "AU26", "AU10")]
        assert np.abs(space.neutral_refs[s] - truth["neutral"][s])[keep].max() < 0.015


def test_heldout_separation_perfect_on_clean_data(space):
    sep = space.separation
    assert sep["n_clips"] == 2 * 3 * 2 * len(EMOTIONS)  # 2 speakers x 3 levels x 2 sentences
    assert sep["accuracy"] == 1.0
    assert np.trace(np.array(sep["confusion"])) == sep["n_clips"]


def test_vector_algebra(space):
    happy = space.vector({"happy": 1.0})
    d = space.directions["happy"]
    np.testing.assert_allclose(happy, d.norm * d.direction)
    np.testing.assert_allclose(space.vector({"happy": 0.5}), 0.5 * happy)
    np.testing.assert_allclose(space.vector({"neutral": 1.0}), 0.0)
    mix = space.vector({"happy": 0.5, "surprised": 0.5})
    np.testing.assert_allclose(mix, 0.5 * happy + 0.5 * space.vector({"surprised": 1.0}))
    brows = space.vector({"angry": 1.0}, units=["brows"])
    full = space.vector({"angry": 1.0})
    idx = [schema.AU_NAMES.index(a) for a in schema.FACIAL_UNITS["brows"]]
    others = [i for i in range(17) if i not in idx]
    np.testing.assert_allclose(brows[idx], full[idx])
    assert np.all(brows[others] == 0)
    off = space.vector({"happy": 1.0}, offsets={"AU12": 0.1})
    assert off[schema.AU_NAMES.index("AU12")] == pytest.approx(happy[schema.AU_NAMES.index("AU12")] + 0.1)
    with pytest.raises(LESError, match="known"):
        space.vector({"hapy": 1.0})
    with pytest.raises(LESError, match="facial unit"):
        space.vector({"happy": 1.0}, units=["ears"])


def test_to_les_recovers_level_and_mix(space, synthetic):
    root, truth = synthetic
    s = "M106"  # held-out speaker
    frames = pd.read_parquet(root / "frames" / f"{s}_front_happy_2_001.parquet")
    aus = frames[list(schema.AU_NAMES)].to_numpy()
    w = space.to_les(aus, truth["neutral"][s])
    assert w["happy"] == pytest.approx(LEVEL_SCALE[2] * truth["gain"][s] * NORM["happy"] / space.directions["happy"].norm, abs=0.06)
    assert max(v for e, v in w.items() if e != "happy") < 0.1
    # a synthetic compound AU vector comes back as its components
    target = {"happy": 0.4, "sad": 0.7}
    mixed = space.global_neutral + space.vector(target)
    w2, rest = space.to_les(mixed, residual=True)
    for e in EMOTIONS:
        assert w2[e] == pytest.approx(target.get(e, 0.0), abs=1e-6)
    assert max(abs(v) for v in rest.values()) < 1e-6


def test_save_load_roundtrip_and_tamper(space, tmp_path):
    out = space.save(tmp_path / "les")
    loaded = LinearEmotionSpace.load(out)
    assert loaded.emotions == space.emotions
    np.testing.assert_allclose(loaded.matrix(), space.matrix())
    np.testing.assert_allclose(loaded.vector({"sad": 0.3}, units=["brows"]), space.vector({"sad": 0.3}, units=["brows"]))
    assert loaded.directions["happy"].level_scales == space.directions["happy"].level_scales
    meta = json.loads((out / "les.json").read_text())
    assert meta["version"] == "1" and meta["provenance"]["dataset.json_sha256"]
    h = les_hash(out)
    # tampering with the arrays is detected
    with np.load(out / "les.npz") as z:
        arrays = dict(z)
    arrays["directions"] = arrays["directions"] * 2
    np.savez(out / "les.npz", **arrays)
    assert les_hash(out) != h
    with pytest.raises(LESError, match="sha256"):
        LinearEmotionSpace.load(out)
    with pytest.raises(LESError, match="not an LES folder"):
        LinearEmotionSpace.load(tmp_path / "nothing")


def test_heldout_speakers_do_not_change_the_space(synthetic, tmp_path):
    """Corrupting every held-out speaker's AUs leaves the LES directions unchanged."""
    import shutil

    root, truth = synthetic
    copy = tmp_path / "prep"
    shutil.copytree(root, copy)
    for s, split in truth["speakers"].items():
        if split == "train":
            continue
        for f in (copy / "frames").glob(f"{s}_*.parquet"):
            if "_neutral_" in f.name:
                continue
            t = pd.read_parquet(f)
            t["AU12"] = t["AU12"] + 0.8  # every held-out emotion now looks happy
            t.to_parquet(f)
    a, b = build_les(root), build_les(copy)
    np.testing.assert_allclose(a.matrix(), b.matrix())
    assert b.separation["accuracy"] < a.separation["accuracy"]  # but the held-out report sees it


def test_bad_inputs(tmp_path, synthetic):
    with pytest.raises(DatasetError, match="not a prepared data set"):
        build_les(tmp_path)
    import shutil

    root, _ = synthetic
    copy = tmp_path / "noneutral"
    shutil.copytree(root, copy)
    clips = pd.read_parquet(copy / "clips.parquet")
    clips = clips[clips.emotion != "neutral"]
    clips.to_parquet(copy / "clips.parquet")
    with pytest.raises(DatasetError, match="neutral"):
        build_les(copy)
    # one missing frames file is skipped and reported, not fatal
    copy2 = tmp_path / "missing"
    shutil.copytree(root, copy2)
    (copy2 / "frames" / "M100_front_sad_1_001.parquet").unlink()
    sp = build_les(copy2)
    assert "M100_front_sad_1_001" in sp.provenance["skipped_clips"]


def test_parsers():
    assert parse_mix("happy=0.5, surprised=0.25") == {"happy": 0.5, "surprised": 0.25}
    with pytest.raises(LESError):
        parse_mix("happy")
    assert parse_units("brows,mouth_lower") == ["brows", "mouth_lower"]
    assert parse_units(None) is None
    with pytest.raises(LESError):
        parse_units("brows,ears")


def test_cli_build_writes_artifact_and_report(synthetic, tmp_path, capsys):
    from lesbench.cli import main

    root, _ = synthetic
    assert main(["les", "build", str(root), "--out", str(tmp_path / "L")]) == 0
    out = capsys.readouterr().out
    assert "| happy |" in out and "accuracy 1.000" in out
    for name in ("les.json", "les.npz", "report.md", "directions.png", "level_scales.png", "heldout_confusion.png"):
        assert (tmp_path / "L" / name).stat().st_size > 0
    assert main(["les", "show", str(tmp_path / "L")]) == 0
    assert "Held-out separation" in capsys.readouterr().out
    assert main(["les", "build", str(tmp_path / "nope")]) == 2


# --- the bilateral option ------------------------------------------------------------------------
SMALL = dict(n_train=3, n_heldout=1, sentences=1, n_frames=24)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small synthetic data set without and with per-side AU columns (same values otherwise);
    in the second, sad's delta is all on the _L side."""
    root = tmp_path_factory.mktemp("les-bilateral")
    build_synthetic_prepared(root / "plain", **SMALL)
    build_synthetic_prepared(root / "sided", one_sided="sad", **SMALL)
    return root / "plain", root / "sided"


def test_bilateral_needs_the_sided_columns(pair):
    with pytest.raises(DatasetError, match=r"frames/.*\.parquet: no column\(s\) AU02_L"):
        build_les(pair[0], bilateral=True)


def test_bilateral_les_is_30d_and_finds_the_one_sided_emotion(pair, tmp_path):
    bilateral = pair[1]
    from lesbench.extract.action_units import BILATERAL_SET_NAMES

    bil = build_les(bilateral, bilateral=True)
    assert bil.au_set == "bilateral" and tuple(bil.au_names) == BILATERAL_SET_NAMES
    assert bil.matrix().shape == (len(EMOTIONS), 30)
    asym = bil.asymmetry()
    # sad = AU01 + AU04 + AU15 prototype: its delta is all on the left side
    assert asym["sad"]["index"] > 0.9 and asym["sad"]["right"] == pytest.approx(0.0, abs=0.05)
    assert asym["sad"]["pair"] in ("AU04", "AU15") and asym["sad"]["left"] > 0.4
    for e in ("angry", "happy", "surprised"):
        assert asym[e]["index"] < 0.1, e
    d = bil.directions["sad"].direction
    assert d[BILATERAL_SET_NAMES.index("AU01")] > 0.3  # the unpaired AU stays in the direction
    # both AU sets' separations are recorded; the averaged one is the default LES's own
    by_set = bil.separation_by_au_set
    assert set(by_set) == {"averaged", "bilateral"}
    assert by_set["averaged"] == build_les(pair[0]).separation
    assert by_set["bilateral"] == bil.separation and bil.separation["accuracy"] == 1.0
    # units hold both sides; a vector restricted to the brows moves only brow AUs
    assert bil.units["brows"] == ("AU01", "AU02_L", "AU02_R", "AU04_L", "AU04_R")
    v = bil.vector({"sad": 1.0}, units=["brows"])
    moved = {BILATERAL_SET_NAMES[i] for i in np.flatnonzero(np.abs(v) > 1e-12)}
    assert moved and moved <= set(bil.units["brows"])
    # round trip; a bilateral LES is refused where the 17 averaged AUs are expected
    bil.save(tmp_path / "bil")
    with pytest.raises(LESError, match="bilateral LES over 30 AUs"):
        LinearEmotionSpace.load(tmp_path / "bil")
    back = LinearEmotionSpace.load(tmp_path / "bil", allow_bilateral=True)
    np.testing.assert_allclose(back.matrix(), bil.matrix())
    assert back.separation_by_au_set == json.loads(json.dumps(by_set))
    assert json.loads((tmp_path / "bil" / "les.json").read_text())["asymmetry"]["sad"]["index"] > 0.9
    from lesbench.les.report import report_text

    text = report_text(back)
    assert "## Held-out separation by AU set" in text and "| sad | " in text and "AU set: bilateral (30 AUs)" in text


def test_averaged_les_unchanged_by_the_sided_columns(pair, tmp_path):
    # The default LES on a data set with the per-side columns is the one without them, file for file.
    a = build_les(pair[0])
    b = build_les(pair[1])
    np.testing.assert_array_equal(a.matrix(), b.matrix())
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    assert (tmp_path / "a" / "les.npz").read_bytes() == (tmp_path / "b" / "les.npz").read_bytes()
    ja, jb = (json.loads((tmp_path / x / "les.json").read_text()) for x in "ab")
    ja["provenance"].pop("root", None), jb["provenance"].pop("root", None)
    assert "au_set" not in ja and ja == jb


def test_cli_build_bilateral(pair, tmp_path, capsys):
    from lesbench.cli import main

    assert main(["les", "build", str(pair[1]), "--bilateral", "--out", str(tmp_path / "B")]) == 0
    out = capsys.readouterr().out
    assert "AU set: bilateral (30 AUs)" in out and "| averaged | bilateral |" in out
    assert json.loads((tmp_path / "B" / "les.json").read_text())["au_set"] == "bilateral"
    assert main(["les", "show", str(tmp_path / "B")]) == 0
    assert "One-sidedness" in capsys.readouterr().out
    assert main(["les", "build", str(pair[0]), "--bilateral", "--out", str(tmp_path / "C")]) == 2
    assert "AU02_L" in capsys.readouterr().err
