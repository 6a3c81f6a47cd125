"""The web page (menet-app, menet_tf.webapp): its limits through the HTTP interface, queued concurrency with
bounded memory, and a real browser (headless Chromium via Selenium) uploading a Rain100L photo whose
downloaded result is byte for byte `derain`'s output for the same photo and model."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the [app] extra (Starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the [app] extra (Starlette, uvicorn) is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
RAIN_001 = os.path.join(SHARED, "Rain100L", "rain-001.png")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
SCREENSHOT_DIR = os.environ.get("MENET_SCREENSHOT_DIR")  # set to docs/figures to refresh the README's picture


class Server:
    def __init__(self, *flags):
        self.proc = subprocess.Popen([sys.executable, "-m", "experiments.app", *flags], cwd=ROOT, env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.time() + 180
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
            if m:
                self.url = m.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.stop()
        raise AssertionError("menet-app did not start:\n" + "".join(self.lines[-30:]))

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _post(url, data: bytes, filename="photo.png", headers_only=False, **fields):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if headers_only:
        # the headers alone, then the answer: a server that refuses by Content-Length answers before the body is
        # read; sending it first would race its close (a broken pipe instead of the answer)
        import http.client

        parsed = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        try:
            conn.putrequest("POST", parsed.path + "api/jobs")
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()
    req = urllib.request.Request(url + "api/jobs", data=body, method="POST", headers=headers)
    status, raw, _ = _get(req)
    return status, json.loads(raw)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _wait(server, job_id, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, raw, _ = _get(f"{server.url}api/jobs/{job_id}")
        job = json.loads(raw)
        if job.get("state") in ("done", "error"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished in {timeout} s")


@pytest.fixture(scope="module")
def small_server():
    s = Server("--max_upload_mb=0.5", "--max_megapixels=1", "--max_queue=3", "--model=menet-lb-rain100l")
    yield s
    s.stop()


def test_limits_are_refused_with_a_message_and_the_server_goes_on(small_server):
    url = small_server.url
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)  # ~1 MB as PNG: over 0.5 MB
    status, body = _post(url, _png(noise), headers_only=True)  # refused from Content-Length, before the body
    assert status == 413 and "MB limit" in body["error"], body
    flat = np.full((1200, 1000, 3), 90, np.uint8)  # tiny file, 1.2 megapixels: over 1
    status, body = _post(url, _png(flat))
    assert status == 413 and body["error"].startswith("1000x1200 is 1.2 megapixels, more than the 1 megapixel"), body
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # 900 megapixels in ~100 kB: refused from the header
    status, body = _post(url, bomb.getvalue())
    assert status == 413 and "megapixels" in body["error"], body
    status, body = _post(url, b"%PDF-1.4 not a picture at all" * 10, filename="../../etc/passwd")
    assert status == 415 and body["error"].startswith("not an image"), body
    status, body = _post(url, _png(flat[:40, :40]), model="no-such-model")
    assert status == 400 and "unknown model" in body["error"]
    status, body = _post(url, _png(flat[:40, :40]), rain_scale="-3")
    assert status == 400 and "rain scale" in body["error"]
    status, body = _post(url, _png(flat[:40, :40]), self_ensemble="maybe")
    assert status == 400 and body["error"].startswith("self_ensemble must be 1 or 0"), body
    # still serving, and a good photo goes through; the client's name is never a path
    status, body = _post(url, _png(flat[:48, :64]), filename="../../../tmp/evil name.png")
    assert status == 202 and body["name"] == "evil_name", body
    job = _wait(small_server, body["id"])
    assert job["state"] == "done"
    status, raw, headers = _get(f"{url}api/jobs/{body['id']}/result.png?download=1")
    assert status == 200 and Image.open(io.BytesIO(raw)).size == (64, 48)
    assert 'filename="evil_name.png"' in headers.get("content-disposition", "")
    assert _get(f"{url}api/jobs/..%2F..%2Fetc/result.png")[0] == 404


def _result(server, photo: np.ndarray, **fields) -> tuple[dict, np.ndarray]:
    status, body = _post(server.url, _png(photo), **fields)
    assert status == 202, body
    job = _wait(server, body["id"])
    assert job["state"] == "done", job
    status, raw, _ = _get(f"{server.url}api/jobs/{body['id']}/result.png")
    assert status == 200
    return job, np.asarray(Image.open(io.BytesIO(raw)))


def test_each_upload_chooses_one_pass_or_the_mean_of_four_flips(small_server):
    """self_ensemble=1 gives the mean of the four flipped one-pass results flipped back (within the uint8
    rounding of those results), 0 one pass, and no field the server's default (the mean, as derain's)."""
    rng = np.random.default_rng(5)
    photo = np.clip(rng.normal(128, 40, (48, 72, 3)) + np.linspace(0, 60, 72)[None, :, None], 0, 255).astype(np.uint8)
    _, config, _ = _get(small_server.url + "api/config")
    assert json.loads(config)["self_ensemble"] is True
    job, mean = _result(small_server, photo, self_ensemble="1")
    assert job["self_ensemble"] is True
    job, one = _result(small_server, photo, self_ensemble="0")
    assert job["self_ensemble"] is False
    flips = [lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a[::-1, ::-1]]  # each its own inverse
    passes = [f(_result(small_server, np.ascontiguousarray(f(photo)), self_ensemble="0")[1]).astype(np.float64)
              for f in flips]
    reference = np.mean(passes, axis=0)
    np.testing.assert_array_equal(passes[0], one)
    assert np.abs(mean - reference).max() <= 1.0  # each pass rounded to uint8, then the mean rounded again
    assert np.abs(one - reference).max() > 2.0  # the two choices differ: the flips matter for this net
    job, default = _result(small_server, photo)
    assert job["self_ensemble"] is True and np.array_equal(default, mean)


def test_a_full_queue_is_busy_not_a_crash(small_server):
    data = _png(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    assert len(data) < 0.5e6  # under both limits of small_server
    results = []

    def go():
        results.append(_post(small_server.url, data))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for s, _ in results)
    assert statuses.count(202) >= 3 and set(statuses) <= {202, 503}, statuses
    assert any(s == 503 and b["error"].startswith("busy:") for s, b in results) or statuses.count(202) == 6
    for s, b in results:
        if s == 202:
            assert _wait(small_server, b["id"])["state"] == "done"


def test_eight_requests_at_once_finish_with_memory_bounded():
    server = Server("--max_queue=16")
    try:
        photo = _png(np.random.default_rng(2).integers(0, 256, (720, 1280, 3), dtype=np.uint8))
        status, body = _post(server.url, photo)
        assert status == 202 and _wait(server, body["id"])["state"] == "done"
        one = server.peak_rss_mb()
        results = []
        threads = [threading.Thread(target=lambda: results.append(_post(server.url, photo))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [s for s, _ in results] == [202] * 8
        jobs = [_wait(server, b["id"]) for _, b in results]
        assert [j["state"] for j in jobs] == ["done"] * 8
        eight = server.peak_rss_mb()
        # one photo runs at a time: eight at once need no more memory than one (plus the uploads, 2.8 MB each)
        assert eight < one * 1.15 + 50, (one, eight)
        status, raw, _ = _get(f"{server.url}api/zip?ids={','.join(b['id'] for _, b in results)}")
        import zipfile

        names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
        assert status == 200 and len(names) == 8 and len(set(names)) == 8
        folder = re.search(r"uploads and results go to (\S+) ", "".join(server.lines)).group(1)
        assert len(os.listdir(folder)) == 9  # one folder per job, under random names
    finally:
        server.stop()
    assert not os.path.exists(folder)  # the temporary folder is removed when the server stops


def _chromium():
    for browser in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(browser)
        if path:
            return path, shutil.which("chromedriver")
    return None, None


@pytest.mark.skipif(not os.path.isfile(RAIN_001), reason="../shared/data/Rain100L is absent")
def test_real_browser_upload_download_is_derain_byte_for_byte(tmp_path):
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    browser, driver_path = _chromium()
    if not browser or not driver_path:
        pytest.skip("no Chromium and ChromeDriver here (.ci/run installs Debian's chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cli = subprocess.run([sys.executable, "-m", "experiments.derain", f"--input={RAIN_001}",
                          f"--output_dir={tmp_path / 'cli'}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "experiments.derain", f"--input={RAIN_001}", "--noself_ensemble",
                          f"--output_dir={tmp_path / 'one_pass'}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    server = Server()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(server.url)
        wait = WebDriverWait(driver, 240)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        selected = driver.find_element(By.CSS_SELECTOR, "#model").get_attribute("value")
        from menet_tf import pretrained

        assert selected == pretrained.DEFAULT  # the default model preselected
        driver.find_element(By.CSS_SELECTOR, "#files").send_keys(os.path.abspath(RAIN_001))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card.done .compare[data-ready='1']"))
        card = driver.find_element(By.CSS_SELECTOR, ".card.done")
        card.find_element(By.CSS_SELECTOR, ".download").click()
        wait.until(lambda d: (downloads / "rain-001.png").is_file() and not list(downloads.glob("*.crdownload")))
        assert (downloads / "rain-001.png").read_bytes() == (tmp_path / "cli" / "rain-001.png").read_bytes()
        # the slider moves the split between the two pictures
        slider = card.find_element(By.CSS_SELECTOR, ".slider")
        driver.execute_script("arguments[0].value = 20; arguments[0].dispatchEvent(new Event('input'))", slider)
        clip = card.find_element(By.CSS_SELECTOR, ".after-clip").value_of_css_property("clip-path")
        assert "20%" in clip, clip
        driver.save_screenshot(str(tmp_path / "app.png"))
        if SCREENSHOT_DIR:
            shutil.copyfile(tmp_path / "app.png", os.path.join(SCREENSHOT_DIR, "app_screenshot.png"))
        # the same photo again with "Passes: 1" chosen on the page: derain --noself_ensemble's bytes
        passes = driver.find_element(By.CSS_SELECTOR, "#self-ensemble")
        assert passes.get_attribute("value") == "1"  # the server's default: the mean over 4 flips, as derain's
        passes.find_element(By.CSS_SELECTOR, "option[value='0']").click()
        driver.find_element(By.CSS_SELECTOR, "#files").send_keys(os.path.abspath(RAIN_001))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card.done .compare[data-ready='1']")) == 2)
        fast = [c for c in driver.find_elements(By.CSS_SELECTOR, ".card.done") if "1 pass" in c.text]
        assert len(fast) == 1, [c.text for c in driver.find_elements(By.CSS_SELECTOR, ".card")]
        status, raw, _ = _get(f"{server.url}api/jobs/{fast[0].get_attribute('data-job')}/result.png")
        assert status == 200 and raw == (tmp_path / "one_pass" / "rain-001.png").read_bytes()
        assert raw != (tmp_path / "cli" / "rain-001.png").read_bytes()
        # a second upload that is not an image: the error on the page, the server still answers
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"these are not pixels" * 100)
        driver.find_element(By.CSS_SELECTOR, "#files").send_keys(str(bad))
        wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, ".card .error") if e.is_displayed()])
        error = [e for e in driver.find_elements(By.CSS_SELECTOR, ".card .error") if e.is_displayed()][0].text
        assert error.startswith("not an image"), error
        assert _get(server.url + "api/config")[0] == 200
        driver.set_window_size(390, 844)  # a phone-sized window: the page still lays out (one column)
        time.sleep(0.5)
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 400
        driver.save_screenshot(str(tmp_path / "app_phone.png"))
    finally:
        driver.quit()
        server.stop()
