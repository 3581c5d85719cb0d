"""Schemathesis: requests generated from the server's own OpenAPI schema, valid and invalid, must get
documented answers and never a server error."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from lora_sentiment.serving.app import ServeSettings, create_app, run_info


@pytest.fixture(scope="module")
def api_schema(trained_run, trained_classifier):
    app = create_app(
        trained_classifier,
        ServeSettings(max_texts=8, max_chars=500, max_body_bytes=16_384),
        run_info=run_info(trained_run),
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/health", "/info"}
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.path != "/predict":
            continue  # GET /health and /info take no input: there is nothing invalid to send

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            if mode == GenerationMode.NEGATIVE and response.status_code == 413:
                # Invalid and over --max-body-bytes at once: refused before parsing, with the documented 413,
                # which schemathesis' negative-data check does not count among the rejections it expects.
                assert "request body over 16384 bytes" in response.json()["detail"]
                return
            case.validate_response(response)

        check()


def test_a_key_protected_api_refuses_generated_requests_without_the_key(trained_classifier):
    app = create_app(trained_classifier, ServeSettings(api_key="s3cret"))
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)["/predict"]["POST"]

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call()
        assert response.status_code in (401, 422)  # never served without the key, never a 5xx
        case.validate_response(response)

    check()
