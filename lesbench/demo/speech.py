"""Speech-like audio for the demo, with the mouth movements that go with it.

A small formant synthesiser: a glottal pulse train (with jitter and shimmer, emotion-dependent
pitch contour) through three time-varying formant resonators for vowels, nasals and
approximants, plus band-passed noise for plosive bursts, fricatives and aspiration. Sentences
are seeded syllable sequences (consonant + vowel), grouped in words and phrases with pauses.
Sentence ``NNN`` is the same syllable sequence for every speaker and emotion (as in MEAD, where
everyone reads the same text); timing, pitch and loudness vary with speaker, emotion, level and
a per-clip seed.

The same segment timeline gives the articulation per video frame: ``open`` (0 closed .. 1 wide
open, e.g. /a/), closed lips for /p b m/, and ``round`` for /o u sh/, smoothed with a
zero-phase kernel, so the mouth is in sync with the sound (lip-sync offset 0 by construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 16_000
_CTRL = 0.005  # control-rate step, s
_BLOCK = int(SR * _CTRL)  # 80 samples


@dataclass(frozen=True)
class Phone:
    """One speech sound: how it sounds (source, formants, noise band) and looks (open, round)."""

    symbol: str
    kind: str  # vowel | plosive | fricative | nasal | approximant | aspirate
    voiced: bool
    dur: float  # nominal duration, s
    open: float  # mouth opening target, 0..1
    round: float = 0.0  # lip rounding target, 0..1
    formants: tuple[float, float, float] = (500.0, 1500.0, 2500.0)  # Hz (female-ish voice)
    bandwidths: tuple[float, float, float] = (80.0, 100.0, 150.0)
    noise_band: tuple[float, float] = (0.0, 0.0)  # Hz, for bursts/frication
    noise_amp: float = 0.0


VOWELS: dict[str, Phone] = {
    "a": Phone("a", "vowel", True, 0.14, 1.0, 0.0, (850, 1220, 2810), (90, 110, 170)),
    "e": Phone("e", "vowel", True, 0.12, 0.55, 0.0, (560, 2100, 2950), (70, 110, 160)),
    "i": Phone("i", "vowel", True, 0.11, 0.28, 0.0, (320, 2700, 3300), (60, 120, 180)),
    "o": Phone("o", "vowel", True, 0.14, 0.68, 0.65, (520, 900, 2800), (80, 90, 160)),
    "u": Phone("u", "vowel", True, 0.12, 0.35, 0.95, (360, 850, 2650), (60, 90, 150)),
}

CONSONANTS: dict[str, Phone] = {
    "p": Phone("p", "plosive", False, 0.07, 0.0, noise_band=(500, 3000), noise_amp=0.5),
    "b": Phone("b", "plosive", True, 0.06, 0.0, noise_band=(300, 2000), noise_amp=0.3),
    "m": Phone("m", "nasal", True, 0.07, 0.0, formants=(270, 1100, 2500), bandwidths=(60, 250, 300)),
    "t": Phone("t", "plosive", False, 0.07, 0.14, noise_band=(3000, 7000), noise_amp=0.55),
    "d": Phone("d", "plosive", True, 0.06, 0.14, noise_band=(2500, 6000), noise_amp=0.3),
    "n": Phone("n", "nasal", True, 0.07, 0.14, formants=(270, 1600, 2600), bandwidths=(60, 250, 300)),
    "k": Phone("k", "plosive", False, 0.08, 0.3, noise_band=(1500, 3500), noise_amp=0.5),
    "g": Phone("g", "plosive", True, 0.07, 0.3, noise_band=(1200, 3000), noise_amp=0.3),
    "s": Phone("s", "fricative", False, 0.10, 0.12, noise_band=(4500, 7800), noise_amp=0.35),
    "sh": Phone("sh", "fricative", False, 0.10, 0.16, round=0.5, noise_band=(2000, 5000), noise_amp=0.35),
    "f": Phone("f", "fricative", False, 0.09, 0.06, noise_band=(1200, 7800), noise_amp=0.12),
    "l": Phone("l", "approximant", True, 0.06, 0.25, formants=(350, 1100, 2700), bandwidths=(80, 150, 250)),
    "h": Phone("h", "aspirate", False, 0.06, -1.0, noise_amp=0.25),  # open: the next vowel's
}

#: Onset consonant choice weights ("" = vowel-initial syllable).
_ONSETS = ("", "p", "b", "m", "t", "d", "n", "k", "g", "s", "sh", "f", "l", "h")
_ONSET_P = np.array([6, 4, 3, 5, 5, 4, 5, 4, 3, 5, 2, 3, 4, 2], np.float64)
_VOWEL_KEYS = ("a", "e", "i", "o", "u")
_VOWEL_P = np.array([5, 4, 4, 3, 2], np.float64)


@dataclass(frozen=True)
class Syllable:
    onset: str  # key of CONSONANTS or ""
    vowel: str  # key of VOWELS
    stress: bool
    word_end: bool
    phrase_end: bool

    @property
    def text(self) -> str:
        return self.onset + self.vowel


def sentence_syllables(seed: int, sentence: int, seconds: float) -> list[Syllable]:
    """The syllables of sentence number ``sentence`` (same for every speaker and emotion).

    Words of 1-3 syllables, one stressed; a phrase break every 2-4 words; syllables are added
    until the nominal speaking time reaches ``seconds``.
    """
    rng = np.random.default_rng([int(seed), 0x5E47, int(sentence)])
    out: list[Syllable] = []
    t = 0.0
    words_in_phrase = 0
    phrase_len = int(rng.integers(2, 5))
    while t < seconds or not out:
        n = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        stressed = int(rng.integers(0, n))
        words_in_phrase += 1
        phrase_end = words_in_phrase >= phrase_len
        for k in range(n):
            onset = str(rng.choice(_ONSETS, p=_ONSET_P / _ONSET_P.sum()))
            vowel = str(rng.choice(_VOWEL_KEYS, p=_VOWEL_P / _VOWEL_P.sum()))
            last = k == n - 1
            out.append(Syllable(onset, vowel, k == stressed, last, last and phrase_end))
            t += (CONSONANTS[onset].dur if onset else 0.0) + VOWELS[vowel].dur + (0.05 if k == stressed else 0.0)
        t += 0.2 if phrase_end else 0.04
        if phrase_end:
            words_in_phrase = 0
            phrase_len = int(rng.integers(2, 5))
    out[-1] = Syllable(out[-1].onset, out[-1].vowel, out[-1].stress, True, True)
    return out


@dataclass(frozen=True)
class Voice:
    """Speaker traits: mean pitch (Hz) and vocal-tract scale (formants multiply by it)."""

    f0: float = 200.0
    formant_scale: float = 1.0


@dataclass(frozen=True)
class Prosody:
    """How an emotion at a level sounds and moves the mouth (1.0 = neutral)."""

    f0_scale: float = 1.0
    f0_range: float = 1.0
    duration_scale: float = 1.0  # > 1 slower
    loudness: float = 0.5  # peak amplitude
    open_scale: float = 1.0
    jitter: float = 0.01
    tremor: float = 0.0
    tilt: float = 0.96  # glottal low-pass pole; lower = brighter, tenser voice


_EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(),
    "happy": Prosody(1.15, 1.45, 0.94, 0.65, 1.12, 0.012, 0.0, 0.95),
    "surprised": Prosody(1.25, 1.6, 0.97, 0.65, 1.2, 0.012, 0.0, 0.95),
    "angry": Prosody(1.08, 1.25, 0.92, 0.85, 1.15, 0.015, 0.0, 0.92),
    "sad": Prosody(0.9, 0.6, 1.15, 0.33, 0.75, 0.012, 0.0, 0.975),
    "fear": Prosody(1.2, 1.1, 0.93, 0.5, 0.95, 0.03, 0.035, 0.955),
    "disgusted": Prosody(0.95, 0.9, 1.08, 0.5, 0.85, 0.012, 0.0, 0.96),
    "contempt": Prosody(0.97, 0.8, 1.05, 0.45, 0.9, 0.01, 0.0, 0.96),
}


def prosody_for(emotion: str, level: int) -> Prosody:
    """The emotion's prosody, its deviation from neutral scaled by level (0.4, 0.7, 1.0)."""
    full = _EMOTION_PROSODY[emotion]
    base = _EMOTION_PROSODY["neutral"]
    k = {1: 0.4, 2: 0.7, 3: 1.0}[int(level)]

    def mix(name: str) -> float:
        return getattr(base, name) + k * (getattr(full, name) - getattr(base, name))

    return Prosody(**{name: mix(name) for name in Prosody.__dataclass_fields__})


@dataclass
class Utterance:
    """A synthesised clip: audio at :data:`SR` and the per-video-frame articulation.

    ``audio``: ``(N,)`` float32 in [-1, 1]; ``open`` / ``round``: ``(T,)`` float32 per video
    frame (mean over the frame's interval ``[k/fps, (k+1)/fps)``); ``segments``: ``(t0, t1,
    symbol)`` per phone, seconds.
    """

    audio: np.ndarray
    sr: int
    fps: float
    open: np.ndarray
    round: np.ndarray
    segments: list[tuple[float, float, str]]

    @property
    def n_frames(self) -> int:
        return len(self.open)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


def synthesize(
    syllables: list[Syllable],
    voice: Voice,
    prosody: Prosody,
    rng: np.random.Generator,
    fps: float,
    lead: float = 0.3,
    trail: float = 0.3,
) -> Utterance:
    """Render ``syllables`` with ``voice`` and ``prosody``; ``rng`` varies timing and pitch
    per clip. The clip lasts a whole number of video frames (silence ``lead`` before and about
    ``trail`` after the speech)."""
    from scipy import signal

    # --- timeline at control rate -----------------------------------------------------------------
    segs: list[tuple[float, float, Phone | None, dict]] = []
    t = lead
    for syl in syllables:
        vowel = VOWELS[syl.vowel]
        if syl.onset:
            c = CONSONANTS[syl.onset]
            d = c.dur * prosody.duration_scale * rng.uniform(0.85, 1.15)
            segs.append((t, t + d, c, {"next": vowel}))
            t += d
        d = vowel.dur * prosody.duration_scale * rng.uniform(0.85, 1.15) + (0.05 if syl.stress else 0.0)
        segs.append((t, t + d, vowel, {"stress": syl.stress}))
        t += d
        if syl.phrase_end:
            t += rng.uniform(0.16, 0.26) * prosody.duration_scale
        elif syl.word_end:
            t += rng.uniform(0.02, 0.06) * prosody.duration_scale
    speech_end = t
    n_frames = int(np.ceil((speech_end + trail) * fps))
    total = n_frames / fps
    n_ctrl = int(np.ceil(total / _CTRL))
    n = n_ctrl * _BLOCK

    f = np.zeros((n_ctrl, 3))
    f[:] = (500.0, 1500.0, 2500.0)
    bw = np.full((n_ctrl, 3), 150.0)
    av = np.zeros(n_ctrl)  # voicing amplitude
    ah = np.zeros(n_ctrl)  # aspiration (noise through the formants)
    open_t = np.zeros(n_ctrl)
    round_t = np.zeros(n_ctrl)
    accent = np.zeros(n_ctrl)
    noise_segments: list[tuple[int, int, tuple[float, float], float]] = []
    segments_out: list[tuple[float, float, str]] = []

    def idx(x: float) -> int:
        return int(np.clip(round(x / _CTRL), 0, n_ctrl))

    for t0, t1, ph, info in segs:
        i0, i1 = idx(t0), idx(t1)
        segments_out.append((t0, t1, ph.symbol))
        if ph.kind == "vowel":
            f[i0:i1] = np.asarray(ph.formants) * voice.formant_scale
            bw[i0:i1] = ph.bandwidths
            av[i0:i1] = 1.0
            open_t[i0:i1] = ph.open * (1.1 if info.get("stress") else 1.0)
            round_t[i0:i1] = ph.round
            if info.get("stress"):
                accent[i0:i1] = 1.0
        else:
            nxt: Phone = info["next"]
            f[i0:i1] = np.asarray(ph.formants if ph.kind in ("nasal", "approximant") else nxt.formants) * voice.formant_scale
            bw[i0:i1] = ph.bandwidths if ph.kind in ("nasal", "approximant") else nxt.bandwidths
            open_t[i0:i1] = nxt.open * 0.8 if ph.open < 0 else ph.open
            round_t[i0:i1] = max(ph.round, 0.5 * nxt.round)
            if ph.kind == "nasal":
                av[i0:i1] = 0.35
            elif ph.kind == "approximant":
                av[i0:i1] = 0.6
            elif ph.kind == "aspirate":
                ah[i0:i1] = ph.noise_amp
            elif ph.kind == "plosive":
                burst = max(i1 - 3, i0)  # closure, then a ~15 ms burst into the vowel
                if ph.voiced:
                    av[i0:burst] = 0.08  # voice bar
                noise_segments.append((burst, i1, ph.noise_band, ph.noise_amp))
                if not ph.voiced:
                    ah[i1 - 1:i1 + 4] = 0.2  # aspiration into the vowel
            elif ph.kind == "fricative":
                noise_segments.append((i0, i1, ph.noise_band, ph.noise_amp))
                if ph.voiced:
                    av[i0:i1] = 0.3

    # smooth control tracks (formant transitions, amplitude ramps)
    def smooth(x: np.ndarray, width: int) -> np.ndarray:
        if width <= 1:
            return x
        k = np.hanning(width + 2)[1:-1]
        k /= k.sum()
        pad = width // 2
        xp = np.pad(x, [(pad, pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
        if x.ndim == 1:
            return np.convolve(xp, k, mode="same")[pad:pad + len(x)]
        return np.stack([np.convolve(xp[:, j], k, mode="same")[pad:pad + len(x)] for j in range(x.shape[1])], 1)

    f = smooth(f, 7)
    bw = smooth(bw, 5)
    av = smooth(av, 3)
    ah = smooth(ah, 3)

    # --- glottal source -------------------------------------------------------------------------
    ctrl_t = (np.arange(n_ctrl) + 0.5) * _CTRL
    span = max(speech_end - lead, 1e-3)
    declination = 1.0 - 0.12 * np.clip((ctrl_t - lead) / span, 0, 1)
    drift = smooth(rng.normal(0, 1, n_ctrl), 60) * 4.0
    f0_ctrl = voice.f0 * prosody.f0_scale * (declination + 0.1 * prosody.f0_range * smooth(accent, 25)
                                             + 0.03 * prosody.f0_range * drift)
    if prosody.tremor:
        f0_ctrl *= 1.0 + prosody.tremor * np.sin(2 * np.pi * 6.0 * ctrl_t + rng.uniform(0, 2 * np.pi))
    f0 = np.repeat(f0_ctrl, _BLOCK)
    # per-period jitter: a random factor held for ~one period
    jit = np.repeat(rng.normal(0, prosody.jitter, n // 40 + 1), 40)[:n]
    phase = np.cumsum(f0 * (1 + jit) / SR)
    pulses = np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)
    src = np.zeros(n)
    src[pulses] = 1.0 + rng.normal(0, 0.06, len(pulses))  # shimmer
    src = signal.lfilter([1.0], [1.0, -2 * prosody.tilt, prosody.tilt ** 2], src)
    src = np.diff(src, prepend=0.0)  # lip radiation
    src /= np.max(np.abs(src)) + 1e-9

    noise = rng.normal(0, 1, n)
    excitation = src * np.repeat(av, _BLOCK) + 0.15 * noise * np.repeat(ah, _BLOCK)

    # --- time-varying formant cascade (coefficients per control block, state carried) ------------
    out = excitation.copy()
    for j in range(3):
        r = np.exp(-np.pi * bw[:, j] / SR)
        theta = 2 * np.pi * np.minimum(f[:, j], 0.45 * SR) / SR
        a1 = -2 * r * np.cos(theta)
        a2 = r * r
        g = 1 + a1 + a2  # unity gain at DC
        zi = np.zeros(2)
        y = np.empty_like(out)
        for b in range(n_ctrl):
            s = slice(b * _BLOCK, (b + 1) * _BLOCK)
            y[s], zi = signal.lfilter([g[b]], [1.0, a1[b], a2[b]], out[s], zi=zi)
        out = y
    out /= np.max(np.abs(out)) + 1e-9

    # --- bursts and frication ---------------------------------------------------------------------
    fric = np.zeros(n)
    for i0, i1, (lo, hi), amp in noise_segments:
        s0, s1 = max(i0 * _BLOCK - 80, 0), min(i1 * _BLOCK + 80, n)
        if s1 <= s0:
            continue
        sos = signal.butter(2, [lo, min(hi, 0.48 * SR)], btype="bandpass", fs=SR, output="sos")
        seg = signal.sosfilt(sos, noise[s0:s1])
        env = np.hanning(s1 - s0)
        fric[s0:s1] += seg * env * amp / (np.std(seg) + 1e-9) * 0.25
    y = out + fric
    y = signal.sosfilt(signal.butter(2, 70, btype="highpass", fs=SR, output="sos"), y)
    y *= prosody.loudness / (np.max(np.abs(y)) + 1e-9)
    y += rng.normal(0, 10 ** (-58 / 20), n)  # room noise floor, ~-58 dBFS
    audio = np.clip(y[: int(round(total * SR))], -1, 1).astype(np.float32)

    # --- articulation per video frame ---------------------------------------------------------------
    sigma = 0.02 / _CTRL
    k = np.exp(-0.5 * (np.arange(-4 * sigma, 4 * sigma + 1) / sigma) ** 2)
    k /= k.sum()
    open_s = np.convolve(np.clip(open_t * prosody.open_scale, 0, 1.25), k, mode="same")
    round_s = np.convolve(np.clip(round_t, 0, 1), k, mode="same")
    frame_of = np.minimum((ctrl_t * fps).astype(int), n_frames - 1)
    counts = np.bincount(frame_of, minlength=n_frames)
    open_f = np.bincount(frame_of, weights=open_s, minlength=n_frames) / np.maximum(counts, 1)
    round_f = np.bincount(frame_of, weights=round_s, minlength=n_frames) / np.maximum(counts, 1)
    return Utterance(
        audio=audio,
        sr=SR,
        fps=fps,
        open=np.clip(open_f, 0, 1.25).astype(np.float32),
        round=np.clip(round_f, 0, 1).astype(np.float32),
        segments=segments_out,
    )
