"""Schemathesis against a live server with the project's own openapi.yaml: no 5xx, every
response (success and error) conforms to the documented schema, status code, content type
and headers. Schema-valid requests that Lantern refuses for reasons the schema cannot say
(a token id outside this model's vocabulary, an unknown model) are not failures here:
those refusals are 400s with OpenAI's envelope, which the schema check covers."""

import subprocess

from conftest import ROOT, Server

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path):
    # Short generations keep the fuzzed chat and completion requests fast.
    s = Server("--max-tokens-limit", "8", "--ctx-size", "2048", tmp=tmp_path)
    try:
        out = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "schemathesis"), "run", str(ROOT / "openapi.yaml"),
             "--url", s.base, "--checks", CHECKS, "--max-examples", "25", "--workers", "1",
             "--seed", "1", "--request-timeout", "60"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
        tail = out.stdout[-6000:]
        assert out.returncode == 0, tail
        assert "Tested: 18" in out.stdout, tail
        assert "500 Internal Server Error" not in out.stdout
        # The server survived the fuzzing.
        assert s.proc.poll() is None
    finally:
        s.stop()
