"""The google-cloud-bigquery client: Application Default Credentials, or anonymous against an
emulator."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.errors import WarehouseError

if TYPE_CHECKING:
    from google.cloud import bigquery

EMULATOR_VARIABLE = "BIGQUERY_EMULATOR_HOST"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def emulator_endpoint(api_endpoint: str | None) -> str | None:
    """The endpoint for anonymous credentials: the config's, else $BIGQUERY_EMULATOR_HOST."""
    endpoint = api_endpoint or os.environ.get(EMULATOR_VARIABLE) or None
    if endpoint and "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    return endpoint


def user_agent() -> str:
    """`backfill/<version>`: BigQuery's audit logs and job lists show who ran a job."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"backfill/{version('backfill')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "backfill"


def make_client(
    project: str,
    api_endpoint: str | None = None,
    *,
    quota_project: str | None = None,
    impersonate: str | None = None,
) -> bigquery.Client:
    """A client on Application Default Credentials (acting as the `impersonate` service account
    when given), or anonymous against an emulator. It has no default location: each job is sent
    to the location of the datasets it reads."""
    from google.api_core.client_info import ClientInfo
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    # google-api-core and google-auth leave these constructors unannotated.
    info = ClientInfo(user_agent=user_agent())  # type: ignore[no-untyped-call]
    endpoint = emulator_endpoint(api_endpoint)
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        # No quota project: anonymous credentials cannot carry one (the client raised
        # AttributeError on with_quota_project), and an emulator has no quotas.
        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
            client_info=info,
        )
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except DefaultCredentialsError:
        raise WarehouseError(
            "no Google credentials for BigQuery: run `gcloud auth application-default login`, "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
            f"(for an emulator set warehouse.api_endpoint or ${EMULATOR_VARIABLE})",
            transient=False,
        ) from None
    if impersonate:
        from google.auth import impersonated_credentials

        # The caller needs Service Account Token Creator on that account.
        credentials = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=credentials, target_principal=impersonate, target_scopes=[SCOPE]
        )
    return bigquery.Client(
        project=project,
        credentials=credentials,
        client_options=ClientOptions(quota_project_id=quota_project),
        client_info=info,
    )
