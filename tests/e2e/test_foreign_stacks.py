"""Partners' non-Python SOAP stacks against the served marketplace WSDL, end to end.

Each test does what a partner does: generate a client from ``/services/marketplace?wsdl``
of the live server (which fetches the imported XSDs from the same server and nothing else),
compile a small client program kept under tests/fixtures/foreign/, and run it. The program
makes three calls and prints one line for each:

- ``found``: GetPartner("ice-charging") signed with a UsernameToken PasswordDigest,
- ``unknown``: GetPartner("nobody"), caught as the stack's typed GembusFault,
- ``anonymous``: GetPartner without a Security header, caught as the typed GembusFault.

A stack that is not installed skips the test, or fails it when GEMBUS_REQUIRE_FOREIGN=1
(CI sets it, so CI cannot pass by skipping).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.foreign]

FOREIGN = REPO / "tests" / "fixtures" / "foreign"
ADMIN = ("gembus-admin", "demo-admin-password")
JAXWS_RUNTIME = Path("/usr/share/java/jaxws-rt.jar")  # Debian libjaxws-java
GSOAP_HEADER = Path("/usr/include/stdsoap2.h")  # Debian libgsoap-dev
TIMEOUT = 120


def _missing(what: str, packages: str) -> None:
    """Fail in CI, skip on a developer machine without the stack."""
    message = f"{what} not installed (Debian: apt-get install {packages})"
    if os.environ.get("GEMBUS_REQUIRE_FOREIGN", "") in ("1", "true", "yes"):
        pytest.fail(message + "; GEMBUS_REQUIRE_FOREIGN=1 forbids skipping")
    pytest.skip(message)


def _require_commands(packages: str, *commands: str) -> None:
    absent = [command for command in commands if shutil.which(command) is None]
    if absent:
        _missing(", ".join(absent), packages)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _check(done: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(str(arg) for arg in done.args)
    assert done.returncode == 0, (
        f"{command} exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    )
    return done.stdout


def _cases(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    """The client's lines ``case STATUS key=value key=value``, values may contain spaces."""
    cases: dict[str, dict[str, str]] = {}
    for line in done.stdout.splitlines():
        label, _, rest = line.partition(" ")
        status, _, pairs = rest.partition(" ")
        fields = dict(re.findall(r"(\w+)=(.*?)(?= \w+=|$)", pairs))
        cases[label] = {"status": status, **fields}
    return cases


def _assert_contract_behaviour(done: subprocess.CompletedProcess[str]) -> None:
    context = f"client output:\n{done.stdout}\n{done.stderr[-6000:]}"
    cases = _cases(done)
    assert cases.get("found", {}).get("status") == "OK", context
    assert cases["found"]["legalName"] == "ICE Charging GmbH", context
    assert cases["found"]["operatorId"] == "DE*ICE", context
    for label, code, field in [
        ("unknown", "Client.UnknownPartner", "partnerId"),
        ("anonymous", "Client.Authentication", "null"),
    ]:
        case = cases.get(label, {})
        assert case.get("status") == "FAULT", f"{label}: no typed GembusFault\n{context}"
        assert case["code"] == code, context
        assert case["field"] == field, context
        assert case["messageId"] not in ("", "null"), context
        if "faultcode" in case:
            assert case["faultcode"].endswith(f":{code}"), context
    assert done.returncode == 0, context


def test_jaxws_wsimport_client(live_server: LiveServer, tmp_path: Path) -> None:
    _require_commands("jaxws default-jdk-headless", "wsimport", "javac", "java")
    if not JAXWS_RUNTIME.is_file():
        _missing(f"the JAX-WS runtime {JAXWS_RUNTIME}", "libjaxws-java")
    wsdl = f"{live_server.base_url}/services/marketplace?wsdl"
    generated, classes = tmp_path / "src", tmp_path / "classes"
    generated.mkdir()
    classes.mkdir()

    _check(_run(["wsimport", "-keep", "-Xnocompile", "-s", str(generated), wsdl], tmp_path))
    fault = generated / "gembus" / "marketplace" / "v1" / "GembusFault.java"
    assert "getFaultInfo()" in fault.read_text(), "wsimport generated no typed GembusFault"
    sources = sorted(str(path) for path in generated.rglob("*.java"))
    _check(
        _run(
            [
                "javac",
                "-nowarn",
                "-encoding",
                "UTF-8",
                "-cp",
                str(JAXWS_RUNTIME),
                "-d",
                str(classes),
                *sources,
                str(FOREIGN / "jaxws" / "GembusClient.java"),
            ],
            tmp_path,
        )
    )
    classpath = f"{classes}{os.pathsep}{JAXWS_RUNTIME}"
    done = _run(["java", "-cp", classpath, "GembusClient", wsdl, *ADMIN], tmp_path)
    _assert_contract_behaviour(done)


def test_gsoap_wsdl2h_soapcpp2_client(live_server: LiveServer, tmp_path: Path) -> None:
    _require_commands("gsoap libgsoap-dev g++", "wsdl2h", "soapcpp2", "g++")
    if not GSOAP_HEADER.is_file():
        _missing(f"the gSOAP runtime header {GSOAP_HEADER}", "libgsoap-dev")
    wsdl = f"{live_server.base_url}/services/marketplace?wsdl"
    for name in ("typemap.dat", "wsse_username_token.h", "client.h", "gembus_client.cpp"):
        shutil.copy(FOREIGN / "gsoap" / name, tmp_path / name)

    _check(_run(["wsdl2h", "-t", "typemap.dat", "-o", "marketplace.h", wsdl], tmp_path))
    # -j C++ proxy sharing a soap context, -C client side only, -1 SOAP 1.1,
    # -x -w -L: no sample messages, no WSDL/XSD copies, no soapClientLib.
    _check(_run(["soapcpp2", "-j", "-C", "-1", "-x", "-w", "-L", "client.h"], tmp_path))
    units = {
        "soapC.cpp": ["-w"],
        "soapMarketplaceSoap11BindingProxy.cpp": ["-w"],
        "gembus_client.cpp": ["-Wall", "-Wextra", "-Werror"],
    }
    compilers = [
        subprocess.Popen(
            ["g++", "-O0", *flags, "-c", unit, "-o", f"{unit}.o"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for unit, flags in units.items()
    ]
    for unit, compiler in zip(units, compilers, strict=True):
        output, _ = compiler.communicate(timeout=TIMEOUT)
        assert compiler.returncode == 0, f"g++ {unit} failed:\n{output[-6000:]}"
    objects = [f"{unit}.o" for unit in units]
    _check(_run(["g++", "-o", "gembus_client", *objects, "-lgsoap++"], tmp_path))

    endpoint = f"{live_server.base_url}/services/marketplace"
    done = _run([str(tmp_path / "gembus_client"), endpoint, *ADMIN], tmp_path)
    _assert_contract_behaviour(done)


def test_php_soapclient(live_server: LiveServer, tmp_path: Path) -> None:
    _require_commands("php-cli php-soap", "php")
    has_soap = _run(["php", "-r", "exit(class_exists('SoapClient') ? 0 : 1);"], tmp_path)
    if has_soap.returncode != 0:
        _missing("the PHP soap extension", "php-soap")
    wsdl = f"{live_server.base_url}/services/marketplace?wsdl"
    program = FOREIGN / "php" / "gembus_client.php"
    done = _run(["php", "-d", "soap.wsdl_cache_enabled=0", str(program), wsdl, *ADMIN], tmp_path)
    _assert_contract_behaviour(done)
