"""Videos through `derain` (menet_tf.video): a synthetic rainy video with ground truth and a sound track,
de-rained with a shipped model, checked frame by frame against `derain` of the same frames as photos; the
timestamps, rotation and audio kept; bad inputs reported by name; the missing extra named."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")

import video_helpers as vh  # noqa: E402  (tests/video_helpers.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _derain(*args, env=None):
    return subprocess.run([sys.executable, "-m", "experiments.derain", *args], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=600)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _coffee():
    import skimage.data

    return skimage.data.coffee()  # 400 x 600, ships in the scikit-image wheel


@pytest.fixture(scope="module")
def rainy_clip(tmp_path_factory):
    """A 24-frame rainy pan with ground truth and a 1-s tone, written with PNG copies of its decoded frames."""
    d = tmp_path_factory.mktemp("clip")
    clean, rainy = vh.rainy_sequence(_coffee(), 24, size=(160, 256), seed=3)
    vh.write_video(d / "clip.mp4", rainy, rate=25, audio_seconds=1.0)
    decoded, times, _ = vh.read_frames(d / "clip.mp4")
    from menet_tf.imageio import write_image

    for i, f in enumerate(decoded):  # the same frames as photos, beside the video: one `derain` call does both
        write_image(str(d / f"frame{i:03d}.png"), f)
    out = d / "out"
    r = _derain(f"--input={d}", f"--output_dir={out}", "--side_by_side", "--self_ensemble")  # frames as photos
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return {"dir": d, "out": out, "clean": clean, "rainy": rainy, "decoded": decoded, "times": times, "log": r.stdout}


def test_video_keeps_frames_timestamps_rate_and_sound(rainy_clip):
    src, dst = rainy_clip["dir"] / "clip.mp4", rainy_clip["out"] / "clip.mp4"
    frames, times, _ = vh.read_frames(dst)
    assert frames.shape == rainy_clip["decoded"].shape
    assert times == pytest.approx(rainy_clip["times"], abs=1e-6)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate == 25
        assert b.streams.video[0].codec_context.name == "h264"
    audio_in, audio_out = vh.packets(src), vh.packets(dst)
    assert len(audio_in) > 10 and audio_out == audio_in  # copied packet for packet, not re-encoded
    sbs, sbs_times, _ = vh.read_frames(rainy_clip["out"] / "clip_side_by_side.mp4")
    assert sbs.shape[2] == 2 * frames.shape[2] and sbs_times == pytest.approx(times, abs=1e-6)
    assert "1 of 1 audio/subtitle streams copied" in rainy_clip["log"]


def test_every_video_frame_is_the_photo_derain_of_that_frame(rainy_clip, tmp_path):
    """Each frame of the de-rained video equals `derain` of that frame as a photo, within the loss of
    encoding: the photo results, encoded the same way (H.264, crf 17, 4:2:0), lose as much."""
    from menet_tf.imageio import read_image

    frames, _, _ = vh.read_frames(rainy_clip["out"] / "clip.mp4")
    photos = np.stack([read_image(str(rainy_clip["out"] / f"frame{i:03d}.png")) for i in range(len(frames))])
    vh.write_video(tmp_path / "photos.mp4", photos, options={"crf": "17"})
    encoded, _, _ = vh.read_frames(tmp_path / "photos.mp4")
    for i, (f, p, e) in enumerate(zip(frames, photos, encoded)):
        loss = _psnr(e, p)  # what encoding alone costs this frame
        assert 30 < loss < 60, i
        assert _psnr(f, p) > loss - 0.5, i
        assert _psnr(f, e) > 45, i  # and the two encodings agree


def test_by_default_photos_get_the_self_ensemble_and_video_frames_one_pass(rainy_clip, tmp_path):
    """No --self_ensemble flag: the photo of a mixed folder is the self-ensemble's (byte for byte the photo
    --self_ensemble wrote), the video is the one-pass video (the same file as --noself_ensemble writes: x264 is
    deterministic), and the two one-pass and self-ensemble photos differ."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(rainy_clip["dir"] / "clip.mp4", src / "clip.mp4")
    shutil.copy(rainy_clip["dir"] / "frame000.png", src / "frame000.png")
    default = _derain(f"--input={src}", f"--output_dir={tmp_path / 'default'}")
    assert default.returncode == 0, (default.stdout + default.stderr)[-3000:]
    assert "photos yes, video frames no" in default.stdout
    one = _derain(f"--input={src}", f"--output_dir={tmp_path / 'one'}", "--noself_ensemble")
    assert one.returncode == 0, (one.stdout + one.stderr)[-3000:]
    assert (tmp_path / "default" / "clip.mp4").read_bytes() == (tmp_path / "one" / "clip.mp4").read_bytes()
    photo_se = (rainy_clip["out"] / "frame000.png").read_bytes()
    assert (tmp_path / "default" / "frame000.png").read_bytes() == photo_se
    assert (tmp_path / "one" / "frame000.png").read_bytes() != photo_se


def test_derained_video_is_closer_to_the_clean_frames_than_the_rainy_one(rainy_clip):
    frames, _, _ = vh.read_frames(rainy_clip["out"] / "clip.mp4")
    clean = rainy_clip["clean"]
    before = np.mean([_psnr(r, c) for r, c in zip(rainy_clip["decoded"], clean)])
    after = np.mean([_psnr(f, c) for f, c in zip(frames, clean)])
    assert after > before + 2.0, (before, after)


def test_variable_frame_rate_and_rotation_are_kept(tmp_path):
    clean, rainy = vh.rainy_sequence(_coffee(), 8, size=(96, 128), seed=4)
    pts = [0, 512, 1024, 2560, 3072, 5120, 5632, 6400]  # 40 ms steps with gaps: a variable frame rate
    vh.write_video(tmp_path / "phone.mov", rainy, pts=pts, rotation=90)
    r = _derain(f"--input={tmp_path / 'phone.mov'}", f"--output_dir={tmp_path / 'out'}", "--model=menet-lb-rain100l", "--noself_ensemble")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    _, t_in, rot_in = vh.read_frames(tmp_path / "phone.mov")
    frames, t_out, rot_out = vh.read_frames(tmp_path / "out" / "phone.mov")
    assert rot_in == rot_out == 90
    assert frames.shape == (8, 96, 128, 3)  # de-rained as stored; players turn it as they turned the input
    assert t_out == pytest.approx(t_in, abs=1e-6)
    # (the mov muxer stores the last frame's time from the sample durations: checked on the others)
    assert t_in[:7] == pytest.approx([p / 12800 for p in pts[:7]], abs=1e-6)


def test_a_subtitle_stream_is_copied_packet_for_packet(tmp_path):
    srt = tmp_path / "captions.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,150\nRain, rain\n\n2\n00:00:00,200 --> 00:00:00,300\ngo away\n")
    _, rainy = vh.rainy_sequence(_coffee(), 8, size=(64, 96), seed=5)
    vh.write_video(tmp_path / "talk.mkv", rainy, subtitles=srt, audio_seconds=0.3)
    r = _derain(f"--input={tmp_path / 'talk.mkv'}", f"--output_dir={tmp_path / 'out'}", "--model=menet-lb-rain100l", "--noself_ensemble")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "2 of 2 audio/subtitle streams copied" in r.stdout

    def subtitles(path):
        with av.open(str(path)) as c:
            assert c.streams.subtitles[0].codec_context.name in ("srt", "subrip")
            return [(p.pts, p.duration, bytes(p)) for p in c.demux(c.streams.subtitles[0]) if p.size]

    got = subtitles(tmp_path / "out" / "talk.mkv")
    assert got == subtitles(tmp_path / "talk.mkv")
    assert [text for *_, text in got] == [b"Rain, rain", b"go away"]
    assert len(vh.read_frames(tmp_path / "out" / "talk.mkv")[0]) == 8


def test_odd_size_and_10_bit_videos_are_processed_and_said_so(tmp_path):
    rng = np.random.default_rng(0)
    odd = rng.integers(0, 256, (3, 45, 67, 3), dtype=np.uint8)
    vh.write_video(tmp_path / "odd.mkv", odd, pix_fmt="yuv444p")
    deep = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    vh.write_video(tmp_path / "deep.mp4", deep, pix_fmt="yuv420p10le")
    with av.open(str(tmp_path / "deep.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    r = _derain(f"--input={tmp_path}", f"--output_dir={tmp_path / 'out'}", "--model=menet-lb-rain100l", "--noself_ensemble")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "67x45 has an odd side: encoded 4:4:4" in r.stdout
    assert "10-bit video (yuv420p10le): converted to 8-bit" in r.stdout
    for name, shape in (("odd.mkv", (3, 45, 67, 3)), ("deep.mp4", (3, 48, 64, 3))):
        frames, _, _ = vh.read_frames(tmp_path / "out" / name)
        assert frames.shape == shape, name


def test_bad_videos_are_named_and_the_rest_of_the_folder_is_processed(tmp_path):
    good = np.random.default_rng(1).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    vh.write_video(tmp_path / "good.mp4", good, audio_seconds=0.2)
    blob = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with av.open(str(tmp_path / "sound_only.mp4"), "w") as out:  # a file with no video stream
        a = out.add_stream("aac", rate=48000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 48000, 0
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    for name in ("empty.mkv", "empty.mp4"):  # a video stream with zero frames (mp4 then drops the track)
        with av.open(str(tmp_path / name), "w") as out:
            vs = out.add_stream("libx264", rate=25)
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
            out.start_encoding()
    r = _derain(f"--input={tmp_path}", f"--output_dir={tmp_path / 'out'}", "--model=menet-lb-rain100l", "--noself_ensemble")
    assert r.returncode == 1, (r.stdout + r.stderr)[-3000:]
    failed = r.stdout.split("failed:")[-1]
    assert f"{tmp_path / 'truncated.mp4'}: not a video, or a corrupt or truncated one" in failed
    assert f"{tmp_path / 'noise.mp4'}: not a video, or a corrupt or truncated one" in failed
    assert f"{tmp_path / 'sound_only.mp4'}: no video stream (streams: audio)" in failed
    assert f"{tmp_path / 'empty.mkv'}: not a video, or a corrupt or truncated one (" in failed
    assert f"{tmp_path / 'empty.mp4'}: no video stream (streams: none)" in failed and "5 failed" in r.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["good.mp4"]  # nothing half-written for the bad ones
    assert vh.read_frames(tmp_path / "out" / "good.mp4")[0].shape == good.shape
    again = _derain(f"--input={tmp_path / 'good.mp4'}", f"--output_dir={tmp_path / 'out'}", "--skip_existing",
                    "--model=menet-lb-rain100l", "--noself_ensemble")
    assert again.returncode == 0 and "good.mp4 already there, skipped" in again.stdout


def test_without_pyav_a_video_is_one_error_line_and_photos_still_work(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "av.py").write_text("raise ImportError('PyAV hidden by the test')\n")
    env = {**ENV, "PYTHONPATH": f"{blocker}{os.pathsep}{ENV.get('PYTHONPATH', '')}"}
    vh.write_video(tmp_path / "clip.mp4", np.zeros((2, 32, 32, 3), np.uint8))
    r = _derain(f"--input={tmp_path / 'clip.mp4'}", f"--output_dir={tmp_path / 'out'}", env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("experiments.derain: error: videos need PyAV, which is not "
                                                 "installed: pip install 'menet-tf[video]'")
    from menet_tf.imageio import write_image

    photos = tmp_path / "mixed"
    photos.mkdir()
    write_image(str(photos / "photo.png"), np.full((40, 48, 3), 120, np.uint8))
    os.replace(tmp_path / "clip.mp4", photos / "clip.mp4")
    r = _derain(f"--input={photos}", f"--output_dir={tmp_path / 'out2'}", env=env)
    assert r.returncode == 1 and (tmp_path / "out2" / "photo.png").is_file()
    assert "pip install 'menet-tf[video]'" in r.stdout and not (tmp_path / "out2" / "clip.mp4").exists()


def test_temporal_filter_averages_still_noise_and_keeps_a_moving_object():
    """menet_tf.temporal (the filter the flicker study tried): on a still scene with independent noise per
    frame the middle frames' noise drops by about sqrt(2R+1); a bright square that moves is not ghosted."""
    from menet_tf import temporal

    rng = np.random.default_rng(0)
    base = np.full((12, 40, 40, 3), 120.0)
    noisy = np.clip(np.round(base + rng.normal(0, 1.0, base.shape)), 0, 255).astype(np.uint8)
    out = temporal.filter_video(noisy, 2)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    before = np.std(noisy[2:-2].astype(float) - 120)
    after = np.std(out[2:-2].astype(float) - 120)
    assert after < before / 1.8, (before, after)  # sqrt(5) = 2.24, less the rounding to uint8
    np.testing.assert_array_equal(temporal.filter_video(noisy, 0), noisy)
    moving = np.full((7, 40, 40, 3), 60, np.uint8)
    for t in range(7):
        moving[t, 10:20, 4 * t:4 * t + 10] = 230
    filtered = temporal.filter_video(moving, 2)
    np.testing.assert_array_equal(filtered, moving)  # every neighbour disagrees where the square moved
