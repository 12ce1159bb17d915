"""The wire's signature and form body are botocore's, byte for byte.

Neither moto nor the benchmark's simulator checks signatures, so both are compared with
botocore's own here; results, errors and retries are compared end to end on moto's server in
tests/integration/aws/test_wire.py.
"""

from __future__ import annotations

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, create_request_object, prepare_request_dict
from botocore.credentials import ReadOnlyCredentials
from botocore.serialize import create_serializer
from botocore.session import get_session

from orgscan.aws.wire import FORM, WIRE_OPERATIONS, Endpoint, encode_form, host_header, sign


@pytest.mark.parametrize(
    ("url", "region", "service", "token"),
    [
        ("https://iam.amazonaws.com", "us-east-1", "iam", "FwoGZXIvYXdzEJr//token+/="),
        ("http://127.0.0.1:4566", "us-east-1", "iam", None),
        ("https://sts.eu-west-1.amazonaws.com:443", "eu-west-1", "sts", "token"),
        ("https://IAM.us-gov.amazonaws.com", "us-gov-west-1", "iam", None),
    ],
)
def test_the_signature_is_botocores(url, region, service, token):
    body = b"Action=ListAccessKeys&Version=2010-05-08&UserName=ci%2Bdeploy%40example.com"
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={"Content-Type": FORM})
    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY", token)
    SigV4Auth(credentials, service, region).add_auth(request)

    endpoint = Endpoint(url=url + "/", host=host_header(url), region=region, service=service)
    amz_date = request.headers["X-Amz-Date"]
    ours = sign(endpoint, body, amz_date, credentials.access_key, credentials.secret_key, token)

    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("iam", "ListUsers", {"MaxItems": 1000}),
        ("iam", "ListUsers", {"MaxItems": 1000, "Marker": "AAE/x+y=="}),
        ("iam", "ListAccessKeys", {"UserName": "ci+deploy=1,a.b@example.com"}),
        ("iam", "GetAccessKeyLastUsed", {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}),
        ("iam", "GenerateCredentialReport", {}),
        ("iam", "GetCredentialReport", {}),
        (
            "sts",
            "AssumeRole",
            {
                "RoleArn": "arn:aws:iam::123456789012:role/path/OrgScanAudit",
                "RoleSessionName": "orgscan",
                "DurationSeconds": 3600,
                "ExternalId": "ext:id/with=odd+chars",
            },
        ),
    ],
)
def test_the_form_body_is_botocores(service, operation, params):
    model = get_session().get_service_model(service).operation_model(operation)
    assert operation in WIRE_OPERATIONS[service]
    request_dict = create_serializer("query", include_validation=False).serialize_to_request(
        params, model
    )
    ours = encode_form(request_dict["body"])
    prepare_request_dict(request_dict, endpoint_url="https://example.com")
    body = create_request_object(request_dict).prepare().body
    assert ours == (body.encode() if isinstance(body, str) else body)
