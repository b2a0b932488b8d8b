"""Linear face model: exact recovery on synthetic low-rank faces, pose, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lesbench.errors import LesbenchError
from lesbench.extract.head_pose import rotation_from_euler
from lesbench.extract.coeffs_table import coeffs_schema, coeffs_to_table
from lesbench.extract.face_model import STABLE_LANDMARKS, FaceModel
from lesbench.extract.rigid_alignment import transform_from_pose, umeyama

FLIP = np.diag([1.0, -1.0, -1.0])
N = 478


def _base_shape(rng) -> np.ndarray:
    shape = np.column_stack([rng.uniform(-1.5, 1.5, N), rng.uniform(-1.5, 2.0, N), rng.uniform(-0.5, 0.5, N)])
    shape[33], shape[263] = (-1.0, 0.0, 0.0), (1.0, 0.0, 0.0)
    shape[10], shape[152] = (0.0, -1.5, 0.2), (0.0, 2.0, 0.1)
    return shape


def _deformations(rng, k: int) -> np.ndarray:
    """k random (478*3,) deformation directions that leave the stable landmarks still."""
    basis = rng.normal(0, 0.15, size=(k, N, 3))
    basis[:, list(STABLE_LANDMARKS)] = 0.0
    return basis.reshape(k, -1)


def _pose_transform(yaw, pitch, roll, scale, t):
    r = FLIP @ rotation_from_euler(yaw, pitch, roll) @ FLIP  # camera convention -> pixel axes
    return lambda y: scale * y @ r.T + np.asarray(t)


def make_dataset(seed=0, n_speakers=6, clips=3, frames=30, k_id=3, k_exp=4):
    rng = np.random.default_rng(seed)
    base = _base_shape(rng)
    id_dirs = _deformations(rng, k_id)
    exp_dirs = _deformations(rng, k_exp)
    tracks, groups, truth = [], [], []
    for s in range(n_speakers):
        ident = base.reshape(-1) + rng.normal(0, 1, k_id) @ id_dirs
        for _ in range(clips):
            shapes, poses = [], []
            for _ in range(frames):
                y = (ident + rng.normal(0, 1, k_exp) @ exp_dirs).reshape(N, 3)
                pose = (rng.uniform(-30, 30), rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(40, 120),
                        (rng.uniform(50, 300), rng.uniform(50, 300), rng.uniform(-20, 20)))
                shapes.append(_pose_transform(*pose)(y))
                poses.append(pose)
            tracks.append(np.stack(shapes).astype(np.float32).reshape(frames, -1))
            groups.append(f"S{s}")
            truth.append(poses)
    return tracks, groups, truth, (base, id_dirs, exp_dirs)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset()


@pytest.fixture(scope="module")
def model(dataset):
    tracks, groups, _, _ = dataset
    return FaceModel.fit(tracks, groups, k_id=16, k_exp=8, provenance={"dataset": "synthetic", "clips": len(tracks)})


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(1, 30, 3))
    r = rotation_from_euler(20, -10, 35)
    dst = 2.5 * src[0] @ r.T + np.array([1.0, -2.0, 3.0])
    s, rot, t = umeyama(src, dst)
    assert s[0] == pytest.approx(2.5)
    np.testing.assert_allclose(rot[0], r, atol=1e-10)
    np.testing.assert_allclose(t[0], [1.0, -2.0, 3.0], atol=1e-10)


def test_fit_dimensions_and_orthogonality(model):
    # the generator has 4 expression and 3 identity directions; asked for 8 and 16 (capped at
    # #speakers - 1 = 5), the fit keeps only the directions the data has
    assert model.k_exp == 4
    assert model.k_id == 3
    basis = np.concatenate([model.id_basis, model.exp_basis])
    np.testing.assert_allclose(basis @ basis.T, np.eye(len(basis)), atol=1e-8)
    prov = model.provenance
    assert prov["dataset"] == "synthetic" and prov["n_groups"] == 6 and prov["n_frames"] == 18 * 30
    assert prov["exp_explained_variance"] == pytest.approx(1.0, abs=1e-8)
    assert prov["id_explained_variance"] == pytest.approx(1.0, abs=1e-8)


def test_reconstruction_is_exact_on_low_rank_faces(model, dataset):
    tracks, _, _, _ = dataset
    for track in tracks[:4]:
        c = model.project(track)
        rec = model.reconstruct(c.id, c.exp, c.pose)
        x = track.reshape(-1, N, 3)
        err = np.linalg.norm(rec - x, axis=2).max()
        assert err < 1e-3 * np.abs(x).max(), err


def test_unseen_speaker_is_reconstructed(model):
    # Same generator (seed 0 base/bases) but a new identity and new expressions.
    tracks, *_ = make_dataset(seed=0, n_speakers=7, clips=1, frames=10)
    x = tracks[-1].reshape(-1, N, 3)
    c = model.project(tracks[-1])
    rec = model.reconstruct(c.id, c.exp, c.pose)
    assert np.linalg.norm(rec - x, axis=2).max() < 1e-3 * np.abs(x).max()


def test_projection_recovers_pose(model):
    rng = np.random.default_rng(5)
    for _ in range(5):
        yaw, pitch, roll = rng.uniform(-40, 40), rng.uniform(-25, 25), rng.uniform(-30, 30)
        scale, t = rng.uniform(30, 150), rng.uniform(-100, 400, 3)
        shape = _pose_transform(yaw, pitch, roll, scale, t)(model.mean)
        c = model.project(shape[None])
        np.testing.assert_allclose(c.pose[0], [yaw, pitch, roll, *t, scale], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(c.exp[0], 0.0, atol=1e-4)
    # a frontal, unit-scale mean shape at the origin has zero pose angles
    c = model.project(model.mean[None])
    np.testing.assert_allclose(c.pose[0], [0, 0, 0, 0, 0, 0, 1], atol=1e-6)


def test_pose_round_trip_and_no_face_rows(model, dataset):
    tracks, _, truth, _ = dataset
    track = tracks[0].copy()
    track[3] = np.nan
    c = model.project(track)
    assert np.isnan(c.exp[3]).all() and np.isnan(c.pose[3]).all()
    assert np.isfinite(c.exp[[0, 1, 2, 4]]).all() and np.isfinite(c.id).all()
    s, r, t = transform_from_pose(c.pose[[0]])
    assert s[0] == pytest.approx(c.pose[0, 6])
    # model coordinates -> pixels with the projected pose reproduces the frame
    rec = model.reconstruct(c.id, c.exp[[0]], c.pose[[0]])
    np.testing.assert_allclose(rec[0], tracks[0][0].reshape(N, 3), atol=1e-2)


def test_save_load_round_trip(model, dataset, tmp_path):
    path = model.save(tmp_path / "face_model.npz")
    with np.load(path, allow_pickle=False) as data:  # no pickled objects inside
        prov = json.loads(str(data["provenance"]))
    assert prov["dataset"] == "synthetic" and "lesbench_version" in prov
    assert "date" not in prov  # no wall-clock time inside: identical fits give identical bytes
    back = FaceModel.load(path)
    for name in ("mean", "id_basis", "exp_basis", "id_std", "exp_std", "reference"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    assert back.provenance == model.provenance
    a, b = model.project(dataset[0][1]), back.project(dataset[0][1])
    np.testing.assert_array_equal(a.exp, b.exp)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(LesbenchError, match="not a lesbench face model"):
        FaceModel.load(tmp_path / "other.npz")
    with pytest.raises(LesbenchError, match="not found"):
        FaceModel.load(tmp_path / "missing.npz")


def test_fit_fixes_component_signs(model, dataset):
    from lesbench.extract.pca import fix_signs as _fix_signs, sign_probe as _sign_probe

    for basis in (model.id_basis, model.exp_basis):
        assert (basis @ _sign_probe(basis.shape[1]) > 1e-6).all()
        flipped = basis * np.where(np.arange(len(basis)) % 2, -1.0, 1.0)[:, None]
        np.testing.assert_array_equal(_fix_signs(flipped.copy()), basis)
    # same data in another order (other summation order, other Lanczos rounding): same model
    tracks, groups, _, _ = dataset
    again = FaceModel.fit(tracks[::-1], groups[::-1], k_id=16, k_exp=8)
    np.testing.assert_allclose(again.exp_basis, model.exp_basis, atol=1e-6)
    np.testing.assert_allclose(again.id_basis, model.id_basis, atol=1e-6)


def test_save_is_byte_deterministic(dataset, tmp_path, monkeypatch):
    import time

    tracks, groups, _, _ = dataset
    a = FaceModel.fit(tracks[:6], groups[:6], k_id=4, k_exp=4, provenance={"clips": 6})
    b = FaceModel.fit(tracks[:6], groups[:6], k_id=4, k_exp=4, provenance={"clips": 6})
    monkeypatch.setattr(time, "time", lambda: 1.0e9)
    pa_ = a.save(tmp_path / "a" / "face_model.npz")
    monkeypatch.setattr(time, "time", lambda: 1.7e9)  # np.savez would stamp this into the zip
    pb = b.save(tmp_path / "b" / "face_model.npz")
    assert pa_.read_bytes() == pb.read_bytes()
    assert sorted(p.name for p in pa_.parent.iterdir()) == ["face_model.npz"]  # no temp file left


def test_single_identity_group_has_no_identity_components(dataset, tmp_path):
    import pyarrow.parquet as pq

    tracks, _, _, _ = dataset
    m = FaceModel.fit(tracks[:3], ["S0"] * 3, k_id=16, k_exp=4)
    assert m.k_id == 0 and m.k_exp == 4 and m.id_basis.shape == (0, N * 3)
    c = m.project(tracks[0])
    assert c.id.shape == (0,) and c.exp.shape == (30, 4)
    # the table round-trips through Parquet (a zero-width fixed-size list would not)
    pq.write_table(coeffs_to_table(c, clip_id="S0_front_happy_3_001"), tmp_path / "c.parquet")
    back = pq.read_table(tmp_path / "c.parquet")
    assert back.column("id").to_pylist() == [[]] * 30
    np.testing.assert_array_equal(np.asarray(back.column("exp").to_pylist(), np.float32), c.exp)
    np.testing.assert_allclose(m.reconstruct(c.id, c.exp, c.pose), tracks[0].reshape(30, N, 3), atol=1e-3)
    loaded = FaceModel.load(m.save(tmp_path / "fm.npz"))
    assert loaded.k_id == 0 and loaded.project(tracks[0]).id.shape == (0,)


def test_fit_errors_and_default_groups(dataset):
    from lesbench.errors import DatasetError

    with pytest.raises(DatasetError):
        FaceModel.fit([])
    with pytest.raises(DatasetError, match="no frame"):
        FaceModel.fit([np.full((3, N * 3), np.nan)])
    tracks = dataset[0][:4]
    m = FaceModel.fit(tracks, k_id=16, k_exp=4)  # each clip its own group
    assert m.k_id <= 3 and m.provenance["n_groups"] == 4


def test_coeffs_table(model, dataset):
    import pyarrow as pa

    c = model.project(dataset[0][0])
    table = coeffs_to_table(c, clip_id="S0_front_happy_3_001")
    assert table.schema.equals(coeffs_schema(model.k_id, model.k_exp), check_metadata=False)
    assert table.schema.field("id").type == pa.list_(pa.float32(), model.k_id)
    assert table.num_rows == 30
    exp = np.asarray(table.column("exp").combine_chunks().values).reshape(30, -1)
    np.testing.assert_array_equal(exp, c.exp)
    assert table.column("yaw").to_pylist()[0] == pytest.approx(float(c.pose[0, 0]))


@pytest.mark.meaddev
def test_pose_agrees_with_mediapipe_on_real_mead(mead_dev):
    from lesbench import io
    from lesbench.extract.face import FaceTracker

    clips = sorted((mead_dev / "W009" / "video" / "front").glob("*/level_*/001.mp4"))[:4]
    with FaceTracker() as tracker:
        frames = [tracker.track(io.iter_frames(p)) for p in clips]
    tracks = [np.stack(df["landmarks"]) for df in frames]
    m = FaceModel.fit(tracks, k_exp=16)
    for df, track in zip(frames, tracks):
        c = m.project(track)
        for j, name in enumerate(("yaw", "pitch", "roll")):
            assert np.corrcoef(c.pose[:, j], df[name])[0, 1] > 0.8, name
        np.testing.assert_allclose(c.pose[:, 6].mean(), df["scale"].mean(), rtol=0.05)
        rec = m.reconstruct(c.id, c.exp, c.pose)
        eye = df["scale"].mean()
        assert np.linalg.norm(rec - track.reshape(-1, N, 3), axis=2).mean() < 0.05 * eye


# ---------------------------------------------------------------------------------------------
# Deep3DFaceRecon importer (lesbench.pipelines.deep3d)
# ---------------------------------------------------------------------------------------------


def _deep3d_array(t: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.normal(0, 1, (t, 257)).astype(np.float32)
    arr[:, 224:227] = rng.uniform(-0.3, 0.3, (t, 3))
    return arr


def test_deep3d_files_load_and_split(tmp_path):
    from scipy.io import savemat

    from lesbench.pipelines.deep3d import load_deep3d

    arr = _deep3d_array()
    savemat(tmp_path / "full.mat", {"coeff": arr})
    savemat(tmp_path / "split.mat", {"id": arr[:, :80], "exp": arr[:, 80:144], "tex": arr[:, 144:224],
                                     "angle": arr[:, 224:227], "gamma": arr[:, 227:254], "trans": arr[:, 254:],
                                     "lm68": np.zeros((5, 68, 2))})
    np.save(tmp_path / "c.npy", arr)
    np.savetxt(tmp_path / "c.txt", arr)
    for name in ("full.mat", "split.mat", "c.npy", "c.txt"):
        c = load_deep3d(tmp_path / name)
        assert len(c) == 5
        np.testing.assert_allclose(c.id, arr[:, :80], rtol=1e-6)
        np.testing.assert_allclose(c.exp, arr[:, 80:144], rtol=1e-6)
        np.testing.assert_allclose(c.tex, arr[:, 144:224], rtol=1e-6)
        np.testing.assert_allclose(c.angle, arr[:, 224:227], rtol=1e-6)
        np.testing.assert_allclose(c.gamma, arr[:, 227:254], rtol=1e-6)
        np.testing.assert_allclose(c.trans, arr[:, 254:257], rtol=1e-6)
    single = np.save(tmp_path / "one.npy", arr[0]) or load_deep3d(tmp_path / "one.npy")
    assert len(single) == 1


def test_deep3d_bad_files_name_the_file(tmp_path):
    from scipy.io import savemat

    from lesbench.pipelines.deep3d import load_deep3d

    np.save(tmp_path / "narrow.npy", np.zeros((3, 70)))
    with pytest.raises(LesbenchError, match=r"narrow\.npy.*\(T, 257\)"):
        load_deep3d(tmp_path / "narrow.npy")
    savemat(tmp_path / "other.mat", {"foo": np.zeros(3)})
    with pytest.raises(LesbenchError, match=r"other\.mat.*foo"):
        load_deep3d(tmp_path / "other.mat")
    (tmp_path / "bad.txt").write_text("1 2 three\n")
    with pytest.raises(LesbenchError, match=r"bad\.txt"):
        load_deep3d(tmp_path / "bad.txt")
    with pytest.raises(LesbenchError, match="not found"):
        load_deep3d(tmp_path / "none.mat")


def test_deep3d_pose_convention():
    from lesbench.pipelines.deep3d import split_coefficients

    arr = np.zeros((4, 257), np.float32)
    arr[0, 225] = 0.3  # about y: yaw
    arr[1, 224] = 0.2  # about x: turns the face's +z towards -y (down): negative pitch
    arr[2, 226] = -0.25  # about z: roll
    arr[3, 254:257] = (0.1, -0.2, 9.0)
    pose = split_coefficients(arr).pose()
    np.testing.assert_allclose(pose[0, :3], [np.degrees(0.3), 0, 0], atol=1e-4)
    np.testing.assert_allclose(pose[1, :3], [0, -np.degrees(0.2), 0], atol=1e-4)
    np.testing.assert_allclose(pose[2, :3], [0, 0, np.degrees(-0.25)], atol=1e-4)
    np.testing.assert_allclose(pose[3, 3:], [0.1, -0.2, 9.0, 1.0], atol=1e-6)


def test_deep3d_table():
    import pyarrow as pa

    from lesbench.pipelines.deep3d import deep3d_to_table, split_coefficients

    arr = _deep3d_array(t=3)
    table = deep3d_to_table(split_coefficients(arr), clip_id="M003_front_angry_3_001", include_extra=True)
    assert table.column_names[:4] == ["clip_id", "frame", "id", "exp"]
    assert table.schema.field("id").type == pa.list_(pa.float32(), 80)
    assert table.schema.field("exp").type == pa.list_(pa.float32(), 64)
    assert table.schema.field("gamma").type == pa.list_(pa.float32(), 27)
    ids = np.asarray(table.column("id").combine_chunks().values).reshape(3, 80)
    np.testing.assert_array_equal(ids, arr[:, :80])  # per-frame identity kept
    assert table.column("tz").to_pylist() == pytest.approx(arr[:, 256].tolist())
