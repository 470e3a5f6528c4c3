"""`fvr ui` end to end in a real headless Chromium (Debian's, driven by Playwright), and through gradio_client.

The page is opened, the tests' synthetic clip uploaded, a face selected, a frame previewed, the whole clip restored
and the result downloaded and checked (frame count, audio kept). Every request the page makes must go to the app
itself (no CDN, fonts or analytics). Screenshots of each step are kept in the test's folder, and copied to
$FVR_UI_SCREENSHOTS when it is set (how docs/ui/ is made).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from media import face_clip, fvr_command, read_frames, read_packets, write_video

gr = pytest.importorskip("gradio", reason="the ui extra (Gradio) is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    from fvr.ui.app import UiConfig, launch
    from fvr.ui.session import UiLimits

    port = _free_port()
    urls: list[str] = []
    app, workspace = launch(UiConfig(port=port, limits=UiLimits(max_upload_mb=20)), on_ready=urls.append, block=False)
    yield urls[0], workspace
    app.close()
    workspace.close()
    assert not workspace.path.exists()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("ui") / "talk.mp4", face_clip(12, 256), audio=True)


def _shot(page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if target := os.environ.get("FVR_UI_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian package chromium; make test installs it as "
                                            "root)")
def test_upload_select_preview_restore_download_in_chromium(served, clip: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    url, workspace = served
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.wait_for_selector("#fvr-upload")
        _shot(page, tmp_path, "1-start")

        page.set_input_files("#fvr-upload input[type=file]", str(clip))
        page.wait_for_function("document.querySelector('#fvr-info').innerText.includes('face track')",
                               timeout=60_000)
        assert "1 face track" in page.inner_text("#fvr-info")
        face = page.get_by_label("face 0")
        if not face.is_checked():
            face.check()
        assert face.is_checked()
        _shot(page, tmp_path, "2-faces")

        page.click("#fvr-preview")
        page.wait_for_selector("#fvr-slider img", timeout=60_000)
        page.wait_for_selector("#fvr-crops img", timeout=60_000)
        assert page.locator("#fvr-slider img").count() >= 2  # before and after
        page.click("#fvr-clip")  # the short segment, input | restored, playable in the page
        page.wait_for_selector("#fvr-clip-out video[src]", timeout=60_000)
        _shot(page, tmp_path, "3-preview")

        page.click("#fvr-run")
        link = page.locator("#fvr-result a").first
        link.wait_for(timeout=120_000)
        page.wait_for_function("document.querySelector('#fvr-summary').innerText.includes('Restored')")
        page.wait_for_selector("#fvr-quality img", timeout=60_000)
        # the provenance record is offered with the result (Gradio breaks the name before its suffix)
        assert "talk-restored.mp4.fvr" in page.inner_text("#fvr-result")
        _shot(page, tmp_path, "4-restored")
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "download.mp4"
        download.value.save_as(saved)
        browser.close()
    frames = read_frames(saved)[0]
    assert len(frames) == 12 and frames.shape[1:] == (256, 256, 3)
    assert len(read_packets(saved, "audio")) == len(read_packets(clip, "audio")) > 0
    origin = url.rstrip("/")
    outside = [u for u in requests if not u.startswith((origin, "data:", "blob:"))]
    assert requests and not outside, outside  # nothing but the app itself: works offline


def test_api_upload_preview_restore_with_gradio_client(served, clip: Path) -> None:
    from gradio_client import Client, handle_file

    url, workspace = served
    client = Client(url, verbose=False)
    # the per-tab session (gr.State) stays on the server, keyed by the client's session: not an API value
    info, gallery, faces, frame, own = client.predict(handle_file(str(clip)), api_name="/upload")
    assert "1 face track" in info and Path(gallery).is_file()
    table = own["data"] if isinstance(own, dict) else own
    assert [list(r) for r in table] == [["face 0", ""]]  # one row per face, empty: the Strength slider applies
    def table(rows: list[list[str]]) -> dict:  # a Dataframe input, as the API takes it
        return {"headers": ["face", "strength"], "data": rows}

    settings = ["fvr-fast", 1, 1.0, 1.6, "model's default", "lanczos", ["face 0"], table([["face 0", ""]]),
                "model's own"]
    slider, crops = client.predict(5, *settings, api_name="/preview")
    assert len(slider) == 2 and all(Path(p).is_file() for p in slider) and Path(crops).is_file()
    clip = client.predict(5, *settings, api_name="/preview_clip")
    clip = clip["video"] if isinstance(clip, dict) else clip
    frames = read_frames(Path(clip))[0]
    assert frames.shape == (7, 256, 512, 3)  # frames 5-11 (2 s would be 50), input | restored
    (video, report, record), summary, curves = client.predict(*settings, api_name="/restore")
    assert "Restored **12** frame(s)" in summary and len(read_frames(Path(video))[0]) == 12
    assert "face 0: identity kept" in summary and Path(curves).is_file()
    assert json.loads(Path(report).read_text())[0]["track"] == 0
    assert json.loads(Path(record).read_text())["format"] == "fvr-provenance-1"
    folders = {p for p in workspace.path.glob("job-*") if p.is_dir()}
    client.predict(handle_file(str(clip)), api_name="/upload")  # a new upload in this session: the last one's
    assert len({p for p in workspace.path.glob("job-*") if p.is_dir()} & folders) == len(folders) - 1
    # the face's own strength 0: the preview's after is its before
    import numpy as np
    from PIL import Image

    off = [*settings[:-2], table([["face 0", "0"]]), "model's own"]
    (before, after), _ = client.predict(5, *off, api_name="/preview")
    assert np.array_equal(np.asarray(Image.open(before)), np.asarray(Image.open(after)))


def test_server_refuses_oversize_uploads_and_serves_nothing_outside(served, tmp_path: Path) -> None:
    import httpx

    url, workspace = served
    before = {p for p in workspace.path.rglob("*") if p.is_file()}
    big = os.urandom(21 * 1024 * 1024)  # the served app's limit is 20 MB
    r = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.mp4", big, "video/mp4")}, timeout=60)
    assert r.status_code == 413
    assert {p for p in workspace.path.rglob("*") if p.is_file()} == before  # nothing stored
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    for path in (str(secret), "/etc/passwd", "../../../../etc/passwd", str(workspace.path / ".." / "x")):
        r = httpx.get(f"{url}gradio_api/file={path}", timeout=10)
        assert r.status_code in (403, 404) and "not for the page" not in r.text


def test_api_refuses_non_media_and_tricky_names(served, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, workspace = served
    client = Client(url, verbose=False)
    text = tmp_path / "notes.mp4"
    text.write_text("just text " * 100)
    with pytest.raises(AppError, match="notes.mp4"):
        client.predict(handle_file(str(text)), api_name="/upload")
    odd = tmp_path / "clip;rm -rf ~.mp4"
    write_video(odd, face_clip(4, 128))
    with pytest.raises(AppError, match="unsafe file name"):
        client.predict(handle_file(str(odd)), api_name="/upload")
    assert not any(workspace.path.rglob("notes.mp4")) and not any(workspace.path.rglob("clip;*"))


def test_cli_serves_refuses_a_busy_port_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the workspace is made here: its removal can be checked
    cmd = fvr_command("ui", "--port", str(port))
    server = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        assert list(tmp_path.glob("fvr-ui-*"))  # its private workspace exists while it serves
        busy = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 4 and busy.stderr.count("\n") == 1 and "choose another with --port" in busy.stderr
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 130, err
    assert not list(tmp_path.glob("fvr-ui-*"))  # uploads gone with it


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian package chromium; make test installs it as "
                                            "root)")
def test_live_tab_restores_a_fake_camera_in_chromium(served, tmp_path: Path) -> None:
    import cv2

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    url, _ = served
    camera = tmp_path / "camera.y4m"  # Chromium's fake camera plays this file
    with open(camera, "wb") as f:
        f.write(b"YUV4MPEG2 W256 H256 F25:1 Ip A1:1 C420jpeg\n")
        for frame in face_clip(25, 256):
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    flags = [*FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
             f"--use-file-for-fake-video-capture={camera}"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"]).new_page()
        page.goto(url)
        page.click("#fvr-live button")  # open the live section
        page.click("#fvr-camera [title='grant webcam access'] button")
        page.click("#fvr-camera button[aria-label='capture photo']")  # start streaming
        page.wait_for_selector("#fvr-live-out img", timeout=60_000)
        first = page.get_attribute("#fvr-live-out img", "src")
        page.wait_for_function(f"document.querySelector('#fvr-live-out img').src != {first!r}", timeout=30_000)
        page.locator("#fvr-live-out").scroll_into_view_if_needed()
        _shot(page, tmp_path, "5-live")
        browser.close()
    assert first.startswith(url)  # restored frames, served by the app itself, one after another
