"""Controllability sweep (lesbench.sweep) on fake methods whose AUs are known functions of the
request, against hand-computed Spearman / R^2 / unit isolation; plus the evaluate hook.

The fake methods draw their AU vector into the frames (row 0, one column per AU, value x 250)
and the fake measurement reads it back, so the sweep's orchestration is checked exactly
without MediaPipe. The real tracker run on the tiny demo is ``slow``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lesbench import schema
from lesbench.baselines.base import GenerationRequest, Method, PreparedData
from lesbench.les.space import EmotionDirection, LinearEmotionSpace
from lesbench.sweep import control_sweep, mead_level_for, select_audio, select_sources, strongest_emotion
from lesbench.sweep.yardstick import evaluate_controllability, resolve_les
from lesbench.sweep.records import SweepConfig, SweepSource
from lesbench.sweep.records import unit_record as _unit_record

AU = list(schema.AU_NAMES)
N_AU = len(AU)
SCALE = 250.0  # AU intensity 1.0 -> pixel 250


def _vec(**aus: float) -> np.ndarray:
    v = np.zeros(N_AU)
    for k, x in aus.items():
        v[AU.index(k)] = x
    return v


#: Scaled LES deltas at level 1 (AU units); multiples of 0.04 x level stay exact in uint8 at x250.
DELTAS = {
    "happy": _vec(AU06=0.32, AU12=0.64),
    "surprised": _vec(AU01=0.32, AU02=0.32, AU05=0.16, AU26=0.48),
}
NEUTRAL_AUS = _vec(AU25=0.08, AU45=0.04)


def fake_les() -> LinearEmotionSpace:
    dirs = {}
    for emo, delta in DELTAS.items():
        norm = float(np.linalg.norm(delta))
        dirs[emo] = EmotionDirection(emotion=emo, direction=delta / norm, norm=norm, level_scales={3: norm},
                                     r2=1.0, monotonic=True, speaker_monotonic=1.0, n_speakers=1)
    return LinearEmotionSpace(directions=dirs, neutral_refs={}, global_neutral=np.zeros(N_AU))


def encode(aus: np.ndarray, n: int) -> np.ndarray:
    frames = np.zeros((n, 16, 32, 3), np.uint8)
    frames[:, 0, :N_AU, 0] = np.round(np.clip(aus, 0, 1) * SCALE).astype(np.uint8)
    return frames


def decode(frames: np.ndarray) -> np.ndarray:
    return frames[:, 0, :N_AU, 0].astype(np.float64).mean(axis=0) / SCALE


class FakeMethod(Method):
    """AUs = neutral + response(level) x the emotion's LES delta, masked by units.

    ``mode``: "linear" (response = level), "ignore-level" (1 for any level > 0, like one-hot),
    "no-emotion" (0: audio-only). ``leak``: fraction of the edit that reaches AUs outside the
    requested units (0 = perfect isolation); ``ignore_units``: units are not honoured at all.
    """

    name = "fake-ctrl"
    card = "fake-ctrl"
    controllable = True

    def __init__(self, mode: str = "linear", leak: float = 0.0, ignore_units: bool = False,
                 fail_on: tuple[str, float] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.mode, self.leak, self.ignore_units, self.fail_on = mode, leak, ignore_units, fail_on
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> np.ndarray:
        self.requests.append(request)
        level = request.les_level if request.les_level is not None else request.level / 3
        if self.fail_on == (request.emotion, level):
            raise RuntimeError("boom")
        resp = {"linear": level, "ignore-level": float(level > 0), "no-emotion": 0.0}[self.mode]
        delta = resp * DELTAS.get(request.emotion, np.zeros(N_AU))
        if request.units and not self.ignore_units:
            inside = np.array([a in sum((schema.FACIAL_UNITS[u] for u in request.units), ()) for a in AU])
            delta = np.where(inside, delta, self.leak * delta)
        return encode(NEUTRAL_AUS + delta, request.n_frames)


def _sources() -> list[SweepSource]:
    return [SweepSource("S1_neutral", "S1", "front", np.zeros((16, 32, 3), np.uint8)),
            SweepSource("S2_neutral", "S2", "front", np.zeros((16, 32, 3), np.uint8))]


def _run(method: Method, **cfg):
    audio = np.zeros(schema.HOP * 5, np.float32)
    return control_sweep(method, None, fake_les(), SweepConfig(**cfg), sources=_sources(), audio=audio,
                         measure=decode)


def test_linear_method_is_perfectly_controllable():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    m = FakeMethod("linear")
    res = _run(m)
    assert torch.get_num_threads() == threads  # the sweep's single-thread setting is scoped
    s = res.summary()
    assert res.n_frames == 5 and not res.failures
    assert len(res.levels) == 4  # 2 sources x 2 emotions
    for r in res.levels:
        assert r.levels == [0.0, 0.25, 0.5, 0.75, 1.0] and not r.flat
        # projection of level x delta on the unit direction = level x |delta|
        norm = np.linalg.norm(DELTAS[r.emotion])
        np.testing.assert_allclose(r.projections, np.array(r.levels) * norm, atol=1e-9)
        assert r.spearman == pytest.approx(1.0) and r.r2 == pytest.approx(1.0)
        assert r.slope == pytest.approx(norm)
    assert s["level-spearman"] == pytest.approx(1.0) and s["level-linearity"] == pytest.approx(1.0)
    # per source: 1 neutral + 2 emotions x 4 levels + 5 unit edits
    assert res.n_generated == 2 * (1 + 8 + 5) == len(m.requests)
    neutral = [r for r in m.requests if r.emotion == "neutral"]
    assert len(neutral) == 2 and all(r.les_level == 0.0 for r in neutral)
    # methods that only take MEAD levels see the nearest one
    assert {(r.les_level, r.level) for r in m.requests if r.emotion == "happy" and not r.units} == {
        (0.25, 1), (0.5, 2), (0.75, 2), (1.0, 3)}
    # perfect isolation where the unit moves; the nose (AU09) is in no direction: undefined
    iso = {u: d["isolation"] for u, d in s["per_unit"].items()}
    assert iso["brows"] == pytest.approx(1.0) and iso["mouth_upper"] == pytest.approx(1.0)
    assert math.isnan(iso["nose"])
    assert s["unit-isolation"] == pytest.approx(1.0)


def test_level_ignoring_method_scores_the_worst_value():
    """A one-hot method (follows the emotion, ignores its level): projections (0, c, c, c, c).
    With level 0 in the fit it would get rho = 5/sqrt(50) (ranks 1, 3.5, 3.5, 3.5, 3.5) for
    level control it does not have; over the requested levels it is flat: rho = R^2 = 0."""
    res = _run(FakeMethod("ignore-level", ignore_units=True))
    s = res.summary()
    for r in res.levels:
        c = np.linalg.norm(DELTAS[r.emotion])
        np.testing.assert_allclose(r.projections, [0.0, c, c, c, c], atol=1e-9)
        assert r.flat and r.spearman == 0.0 and r.r2 == 0.0 and r.reason.startswith("flat")
    assert s["level-spearman"] == 0.0 and s["level-linearity"] == 0.0
    assert s["reasons"] == {"level: flat": 4, "unit: undefined": 2}
    # restricting to a unit changes nothing: isolation exactly 0 wherever defined
    vals = [r.isolation for r in res.units if math.isfinite(r.isolation)]
    assert len(vals) == 8 and np.allclose(vals, 0.0)


def test_emotion_ignoring_method_scores_zero_with_reasons(tmp_path):
    res = _run(FakeMethod("no-emotion"))
    assert all(r.flat and r.spearman == 0.0 and r.r2 == 0.0 for r in res.levels)
    s = res.summary()
    assert s["level-spearman"] == 0.0 and s["n_flat"] == 4 and s["unit-isolation"] == 0.0
    by_unit = {r.unit: r for r in res.units if r.source == "S1_neutral"}
    assert by_unit["brows"].isolation == 0.0 and by_unit["brows"].reason.startswith("cannot edit the unit")
    assert math.isnan(by_unit["nose"].isolation) and by_unit["nose"].reason.startswith("undefined")
    # through the evaluate hook: scored 0 (the worst value), not "unavailable"
    les_dir = fake_les().save(tmp_path / "les")
    data = _prepared(tmp_path / "prep")
    scores, unavailable, record = evaluate_controllability(
        FakeMethod("no-emotion"), PreparedData.open(data), les=les_dir, measure=decode)
    assert unavailable == {}
    assert scores["level-spearman"]["value"] == 0.0 and scores["level-linearity"]["value"] == 0.0
    assert scores["unit-isolation"]["value"] == 0.0 and scores["unit-isolation"]["n"] == 8  # nose left out
    assert record["summary"]["reasons"] == {"level: flat": 4, "unit: cannot edit the unit": 8, "unit: undefined": 2}
    json.dumps(record, allow_nan=False)  # NaN written as null


def test_unit_isolation_by_hand():
    neutral = np.zeros(N_AU)
    unrestricted = _vec(AU01=0.3, AU02=0.3, AU05=0.2, AU26=0.4)
    restricted = _vec(AU01=0.3, AU02=0.3, AU05=0.05, AU26=0.1)  # a quarter leaks outside
    from lesbench.metrics.controllability import unit_isolation

    r = _unit_record("s", "brows", "surprised", neutral, unrestricted, restricted, unit_isolation, 0.005)
    assert r.inside_unrestricted == pytest.approx(0.6 / 3) and r.outside_unrestricted == pytest.approx(0.6 / 14)
    assert r.inside_restricted == pytest.approx(0.6 / 3) and r.outside_restricted == pytest.approx(0.15 / 14)
    assert r.ratio_unrestricted == pytest.approx((0.6 / 14) / (0.6 / 3))
    assert r.ratio_restricted == pytest.approx((0.15 / 14) / (0.6 / 3))
    assert r.isolation == pytest.approx(0.75)
    # a restricted edit that does not move its unit (below the noise floor) does not follow the
    # unit request: the worst value, with the reason
    still = _unit_record("s", "brows", "surprised", neutral, unrestricted, _vec(AU05=0.1, AU01=0.004),
                         unit_isolation, 0.005)
    assert still.isolation == 0.0 and still.reason.startswith("does not follow the unit request")
    # neither does a method whose unrestricted edit cannot move the unit
    cannot = _unit_record("s", "brows", "surprised", neutral, _vec(AU26=0.4), _vec(AU26=0.4), unit_isolation, 0.005)
    assert cannot.isolation == 0.0 and cannot.reason.startswith("cannot edit the unit")
    # a request the yardstick cannot pose, or an edit already local, is undefined (left out)
    assert math.isnan(_unit_record("s", "brows", "surprised", neutral, unrestricted, restricted, unit_isolation,
                                   0.005, posable=False).isolation)
    local = _unit_record("s", "brows", "surprised", neutral, _vec(AU01=0.3), _vec(AU01=0.3), unit_isolation, 0.005)
    assert math.isnan(local.isolation) and "moves nothing outside" in local.reason


def test_leaky_method_isolation_and_strongest_emotion():
    res = _run(FakeMethod("linear", leak=0.25))
    by_unit = {r.unit: r for r in res.units if r.source == "S1_neutral"}
    assert by_unit["brows"].emotion == "surprised" and by_unit["mouth_upper"].emotion == "happy"
    assert by_unit["brows"].isolation == pytest.approx(0.75, abs=0.02)  # uint8 rounding of the leak
    les = fake_les()
    assert strongest_emotion(les, "eyes") == "happy"  # 0.32 (AU06) > 0.16 (AU05)
    assert strongest_emotion(les, "mouth_lower") == "surprised"


def test_failed_request_is_recorded_not_fatal():
    res = _run(FakeMethod("linear", fail_on=("happy", 0.5)))
    assert any(k.endswith(":happy:0.5") for k in res.failures) and len(res.failures) == 2
    happy = [r for r in res.levels if r.emotion == "happy"]
    assert all(math.isnan(r.projections[2]) for r in happy)
    assert all(r.spearman == pytest.approx(1.0) for r in happy)  # the other 4 points still count


def test_config_validation_and_mead_level():
    from lesbench.errors import LesbenchError

    with pytest.raises(LesbenchError):
        SweepConfig(levels=(0.0, 0.5))
    with pytest.raises(LesbenchError):
        SweepConfig(units=("ears",))
    assert [mead_level_for(x) for x in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)] == [1, 1, 2, 2, 3, 3]


# ----------------------------------------------------------------------------------- prepared data

CLIPS = [  # clip_id, speaker, emotion, level, split
    ("A001_front_happy_3_001", "A001", "happy", 3, "test"),
    ("A001_front_neutral_1_002", "A001", "neutral", 1, "test"),
    ("A001_front_neutral_1_001", "A001", "neutral", 1, "test"),
    ("B002_front_happy_3_001", "B002", "happy", 3, "test"),  # no neutral clip
    ("C003_front_neutral_1_001", "C003", "neutral", 1, "train"),
]


def _prepared(root: Path) -> Path:
    import pandas as pd

    from lesbench.io import write_video

    (root / "crops").mkdir(parents=True)
    t = np.arange(int(16000 * 0.4)) / 16000
    for i, (cid, *_r) in enumerate(CLIPS):
        frames = np.full((10, 32, 32, 3), 20 * (i + 1), np.uint8)
        audio = (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
        write_video(root / "crops" / f"{cid}.mp4", frames, fps=25, audio=audio, sr=16000)
    pd.DataFrame([dict(clip_id=c, speaker=s, view="front", emotion=e, level=lv, sentence="001", split=sp,
                       status="ok") for c, s, e, lv, sp in CLIPS]).to_parquet(root / "clips.parquet")
    (root / "dataset.json").write_text(json.dumps({"format_version": "1.0", "name": "sweep-fake"}))
    return root


def test_sources_audio_and_les_resolution(tmp_path):
    data = PreparedData.open(_prepared(tmp_path / "prep"))
    src = select_sources(data, max_sources=5)
    assert [(s.speaker, s.clip_id) for s in src] == [("A001", "A001_front_neutral_1_001"),
                                                     ("B002", "B002_front_happy_3_001")]
    assert abs(int(src[0].image.mean()) - 60) <= 2 and src[0].image.shape == (32, 32, 3)
    assert len(select_sources(data, max_sources=1)) == 1
    clip, audio = select_audio(data, duration_s=0.2)
    assert clip == "A001_front_happy_3_001" and len(audio) == 3200

    les_a = fake_les().save(tmp_path / "les_a")
    other = fake_les()
    other.directions["happy"].norm = 2.0
    run = tmp_path / "run"
    other.save(run / "les")

    class WithCheckpoint(FakeMethod):
        checkpoint = run

    # the checkpoint's LES never measures: it is recorded next to the yardstick
    assert resolve_les(WithCheckpoint()) is None
    space, info = resolve_les(WithCheckpoint(), les=les_a)
    assert info["from"] == "option" and space.directions["happy"].norm == pytest.approx(np.linalg.norm(DELTAS["happy"]))
    assert info["method_les"]["path"] == str((run / "les").resolve())
    assert info["method_les"]["same_as_yardstick"] is False and len(info["method_les"]["sha256"]) == 64
    assert resolve_les(FakeMethod()) is None


def test_evaluate_records_sweep(tmp_path, monkeypatch):
    from lesbench import sweep
    from lesbench.evaluation import evaluate
    from lesbench.leaderboard import validate_result
    from lesbench.registry import METHODS

    prep = _prepared(tmp_path / "prep")
    les_dir = fake_les().save(tmp_path / "les")
    monkeypatch.setitem(METHODS._entries, "fake-ctrl", FakeMethod)
    monkeypatch.setattr(sweep, "tracker_measure", lambda tracker=None: decode)

    def scorer(items, protocol, metrics, device):
        return {"psnr": {"version": "1", "value": 30.0, "ci95": None, "higher_is_better": True, "n": len(items)}}

    res = evaluate("fake-ctrl", prep, out=tmp_path / "out", scorer=scorer, les=les_dir)
    rec = json.loads(res.path.read_text())
    validate_result(rec, res.path)
    sc = rec["scores"]
    assert sc["level-spearman"]["value"] == pytest.approx(1.0) and sc["level-spearman"]["higher_is_better"] is True
    assert sc["level-linearity"]["value"] == pytest.approx(1.0) and sc["level-spearman"]["n"] == 4
    assert sc["unit-isolation"]["value"] == pytest.approx(1.0) and sc["unit-isolation"]["higher_is_better"] is True
    ctrl = rec["controllability"]
    assert ctrl["applicable"] is True and ctrl["les"]["from"] == "option" and len(ctrl["les"]["sha256"]) == 64
    assert ctrl["sources"] == ["A001_front_neutral_1_001", "B002_front_happy_3_001"]
    # a method that only replays test clips is reported as not applicable, with no score
    res = evaluate("static", prep, out=tmp_path / "out", scorer=scorer, les=les_dir)
    assert res.record["controllability"]["applicable"] is False
    assert "level-spearman" not in res.record["scores"] and "level-spearman" not in res.record["unavailable"]
    # --no-control; a SweepConfig runs the sweep with it
    res = evaluate("fake-ctrl", prep, out=tmp_path / "out2", scorer=scorer, les=les_dir, control=False)
    assert "level-spearman" not in res.record["scores"]
    res = evaluate("fake-ctrl", prep, out=tmp_path / "out3", scorer=scorer, les=les_dir,
                   control=SweepConfig(max_sources=1, units=("brows",)))
    assert res.record["controllability"]["sources"] == ["A001_front_neutral_1_001"]
    assert res.record["scores"]["unit-isolation"]["n"] == 1


@pytest.mark.slow
def test_sweep_on_tiny_demo_with_tracker(tiny_demo, tmp_path):
    """tiny demo -> prepare -> LES-Talker (30 epochs) -> the sweep measured by MediaPipe on the
    rendered frames: levels are monotonic along each LES direction, unit edits isolate."""
    from lesbench.baselines.les_talker import LESTalkerMethod
    from lesbench.cli import main
    from lesbench.model.train import train

    assert main(["prepare", str(tiny_demo), "--out", str(tmp_path / "prep"), "--workers", "1", "--no-progress"]) == 0
    train(tmp_path / "prep", tmp_path / "run", overrides={"train": {"epochs": 30}, "data": {"windows_per_clip": 8}},
          progress=False)
    data = PreparedData.open(tmp_path / "prep")
    method = LESTalkerMethod(checkpoint=tmp_path / "run", device="cpu")
    method.setup(data)
    scores, unavailable, record = evaluate_controllability(method, data)
    assert record["les"]["from"] == "benchmark" and not record["failures"]
    assert scores["level-spearman"]["value"] > 0.9, record["levels"]
    assert scores["level-linearity"]["value"] > 0.8, record["levels"]
    assert scores["unit-isolation"]["value"] > 0.0, record["units"]
    # the tracker gives landmarks: every unit record holds the other half of the face (sweep/2)
    assert record["units"] and all(u["measurement"] == "held" for u in record["units"]), record["units"]
    print("unit isolation per unit:", {k: v["isolation"] for k, v in record["summary"]["per_unit"].items()})


class _HalvesMethod(FakeMethod):
    """FakeMethod drawn into 64x64 frames: brow/eye AUs in row 0 (upper face), the rest in row 63."""

    def generate(self, request: GenerationRequest) -> np.ndarray:
        aus = super().generate(request)[0, 0, :N_AU, 0]
        frames = np.zeros((request.n_frames, 64, 64, 3), np.uint8)
        frames[:, 0, :N_AU, 0] = np.where(_UPPER, aus, 0)
        frames[:, 63, :N_AU, 0] = np.where(_UPPER, 0, aus)
        return frames


_UPPER = np.array([a in schema.FACIAL_UNITS["brows"] + schema.FACIAL_UNITS["eyes"] for a in AU])


class _CrossTalkMeasure:
    """Reads the AUs back, but like MediaPipe lets the jaw leak into the eyes: AU07 += 0.5 x AU26.
    Landmarks: eye corners at y = 20, the base of the nose at y = 32 (the split)."""

    def __init__(self) -> None:
        self.lm = np.full((478, 3), np.nan)
        self.lm[[33, 263, 2]] = [[10, 20, 0], [54, 20, 0], [32, 32, 0]]

    def with_landmarks(self, frames: np.ndarray):
        frames = np.asarray(frames)
        aus = (frames[:, 0, :N_AU, 0].astype(float) + frames[:, 63, :N_AU, 0]).mean(0) / SCALE
        aus[AU.index("AU07")] += 0.5 * aus[AU.index("AU26")]
        return aus, np.repeat(self.lm[None], len(frames), axis=0)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.with_landmarks(frames)[0]


def test_unit_isolation_holds_the_other_half_against_instrument_cross_talk():
    """A perfectly isolating method measured by an instrument with jaw->eye cross-talk: raw, its
    mouth_lower edit 'leaks' into AU07; with the lower face held (sweep/2) it does not.
    Hand-computed: surprised (AU01 .32, AU02 .32, AU05 .16, AU26 .48), 11 AUs outside
    mouth_lower, 6 inside. Raw: r(R) = (.24/11)/(.48/6), r(U) = (1.04/11)/(.48/6) -> 1 - .24/1.04.
    Held: r(R) = 0 -> 1."""
    audio = np.zeros(schema.HOP * 5, np.float32)
    sources = [SweepSource("S1_neutral", "S1", "front", np.zeros((64, 64, 3), np.uint8))]

    def run(measure):
        res = control_sweep(_HalvesMethod("linear"), None, fake_les(), SweepConfig(units=("mouth_lower", "brows")),
                            sources=sources, audio=audio, measure=measure)
        return {r.unit: r for r in res.units}, res

    ct = _CrossTalkMeasure()
    raw, _ = run(ct.__call__)  # a plain function: no landmarks -> raw measurement
    held, res = run(ct)
    assert raw["mouth_lower"].measurement == "raw" and held["mouth_lower"].measurement == "held"
    assert raw["mouth_lower"].isolation == pytest.approx(1 - 0.24 / 1.04, abs=1e-9)
    assert held["mouth_lower"].isolation == pytest.approx(1.0, abs=1e-12)
    assert held["mouth_lower"].outside_restricted == pytest.approx(0.0, abs=1e-12)
    # the method's real edit of the upper face is still seen through the held lower half
    assert held["mouth_lower"].outside_unrestricted == pytest.approx(0.80 / 11, abs=1e-9)
    # brows: the lower half is measured with the neutral upper face; nothing changes there
    assert held["brows"].isolation == pytest.approx(1.0, abs=1e-12) and held["brows"].measurement == "held"
    assert not res.failures
    # a leaking method stays leaking under the held measurement
    leaky = control_sweep(_HalvesMethod("linear", leak=0.5), None, fake_les(), SweepConfig(units=("mouth_lower",)),
                          sources=sources, audio=audio, measure=ct)
    assert leaky.units[0].measurement == "held" and leaky.units[0].isolation == pytest.approx(0.5, abs=0.02)


def test_one_yardstick_level_following_vs_level_ignoring(tmp_path, monkeypatch):
    """Both methods measured through the evaluate hook with the LES the benchmark builds from
    the prepared train split (not their checkpoints): the level-following one scores rho = 1,
    the level-ignoring one rho = 0 with the reason, and both records carry the same sha256."""
    from _les_synthetic import build_synthetic_prepared

    from lesbench import sweep
    from lesbench.les.space import build_les, les_hash

    root = tmp_path / "synth"
    build_synthetic_prepared(root, n_train=3, n_heldout=1, sentences=1, n_frames=8)
    data = PreparedData.open(root)
    monkeypatch.setattr(sweep, "select_sources", lambda d, n=2, split="test": _sources())
    monkeypatch.setattr(sweep, "select_audio", lambda d, dur, split="test": ("A", np.zeros(schema.HOP * 5, np.float32)))
    run = tmp_path / "run"
    fake_les().save(run / "les")  # a checkpoint LES, which must not be the yardstick

    class Following(FakeMethod):
        checkpoint = run

    cfg = SweepConfig(emotions=("happy", "surprised"), units=("brows", "mouth_upper"))
    follow = evaluate_controllability(Following("linear"), data, config=cfg, measure=decode)
    ignore = evaluate_controllability(FakeMethod("ignore-level", ignore_units=True), data, config=cfg,
                                      measure=decode)
    (s_f, u_f, rec_f), (s_i, u_i, rec_i) = follow, ignore
    assert u_f == {} and u_i == {}
    assert s_f["level-spearman"]["value"] == pytest.approx(1.0) and s_f["level-linearity"]["value"] == pytest.approx(1.0)
    assert s_i["level-spearman"]["value"] == 0.0 and s_i["level-linearity"]["value"] == 0.0
    assert s_f["unit-isolation"]["value"] > 0.9 and s_i["unit-isolation"]["value"] == 0.0
    assert all(r["reason"].startswith("flat") for r in rec_i["levels"])
    # the same yardstick, built from the train split, recorded in the record and every score
    expected = les_hash(build_les(root, train_split="train").save(tmp_path / "les_check"))
    assert rec_f["les"]["from"] == rec_i["les"]["from"] == "benchmark"
    assert rec_f["les"]["sha256"] == rec_i["les"]["sha256"] == expected
    assert s_f["level-spearman"]["yardstick"] == {"les_sha256": expected, "from": "benchmark"}
    assert rec_f["les"]["built_from"]["split"] == "train" and rec_f["les"]["built_from"]["clips.parquet_sha256"]
    assert rec_f["les"]["method_les"]["same_as_yardstick"] is False and "method_les" not in rec_i["les"]
