"""Opens the project the way a workshop participant meets it: JupyterLab (a token, a free port on
loopback) with the doublewin kernel, notebook 01 in headless Chromium driven by Selenium (the
distribution's chromedriver, named explicitly so Selenium never downloads one), its first cells
run from the keyboard (Shift+Enter), their output read from the page. Prints how long each phase
took; exits 1 when an output does not appear or shows an error.

usage: check_jupyterlab.py [--timeout SECONDS]
"""
import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "01_quickstart.ipynb"
# The first code cell that prints: the runtime line ("device Cpu, 2 CPU threads, ...").
EXPECT = "CPU threads"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, deadline, probe, every=0.5):
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    sys.exit(f"[lab] timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole check")
    args = ap.parse_args()
    t0 = time.time()
    deadline = t0 + args.timeout
    work = Path(tempfile.mkdtemp(prefix="doublewin-lab-"))
    # A copy (JupyterLab saves what it runs), its crate dependency pointed at this checkout.
    nb = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text())
    for cell in nb["cells"]:
        cell["source"] = [line.replace('path = ".."', f'path = "{ROOT}"') for line in cell["source"]]
    (work / NOTEBOOK).write_text(json.dumps(nb))
    token, port = secrets.token_hex(16), free_port()
    log = open(work / "jupyterlab.log", "w")
    env = dict(os.environ, DOUBLEWIN_PROFILE=os.environ.get("DOUBLEWIN_PROFILE", "tiny"))
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0"]
        # A container or CI machine runs as root; JupyterLab refuses that unless told.
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"

        def up():
            if lab.poll() is not None:
                log.flush()
                tail = (work / "jupyterlab.log").read_text()[-2000:]
                sys.exit(f"[lab] JupyterLab exited with {lab.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for("JupyterLab to answer", deadline, up)
        t_server = time.time()
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
            opts.add_argument(a)
        driver_path = shutil.which("chromedriver")
        if not driver_path:
            sys.exit("[lab] no chromedriver: install Debian's chromium-driver (scripts/setup.sh does)")
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
        driver.get(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
        wait_for("the notebook's cells", deadline, lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
        # The kernel named in the notebook starts by itself; wait until it is idle.
        wait_for("the doublewin kernel", deadline, lambda: "Idle" in (driver.find_element(By.TAG_NAME, "body").text or "")
                 or driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"), every=1.0)
        t_open = time.time()
        time.sleep(1.0)  # JupyterLab re-renders the cells once the kernel is up: click what is there then
        driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[0].click()
        keys = ActionChains(driver)
        for _ in range(3):  # the title (Markdown), `:dep doublewin`, the runtime cell
            keys.key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT)
        keys.perform()

        def output():
            texts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")]
            errors = [t for t in texts if "error" in t.lower()]
            if errors:
                sys.exit(f"[lab] a cell failed: {errors[0][:500]}")
            return next((t for t in texts if EXPECT in t), None)

        shown = wait_for(f"an output with {EXPECT!r}", deadline, output, every=1.0)
        t_out = time.time()
        print(f"[lab] JupyterLab answered in {t_server - t0:.1f} s; notebook open with the doublewin kernel idle after "
              f"{t_open - t_server:.1f} s more; its first cells ran and showed {shown.strip()!r} {t_out - t_open:.1f} s later "
              f"({t_out - t0:.1f} s in all)")
    except WebDriverException as e:
        sys.exit(f"[lab] the browser failed: {e.msg}")
    finally:
        if driver is not None:
            driver.quit()
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
