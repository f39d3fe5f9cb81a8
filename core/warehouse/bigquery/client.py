"""The google-cloud-bigquery client: Application Default Credentials, or anonymous against an
emulator."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.errors import WarehouseError

if TYPE_CHECKING:
    from google.cloud import bigquery

EMULATOR_VARIABLE = "BIGQUERY_EMULATOR_HOST"


def emulator_endpoint(api_endpoint: str | None) -> str | None:
    """The endpoint for anonymous credentials: the config's, else $BIGQUERY_EMULATOR_HOST."""
    endpoint = api_endpoint or os.environ.get(EMULATOR_VARIABLE) or None
    if endpoint and "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    return endpoint


def make_client(project: str, api_endpoint: str | None = None) -> bigquery.Client:
    """A client on Application Default Credentials, or anonymous against an emulator. It has no
    default location: each job is sent to the location of the datasets it reads."""
    from google.cloud import bigquery

    endpoint = emulator_endpoint(api_endpoint)
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            # google-auth leaves AnonymousCredentials.__init__ unannotated.
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except DefaultCredentialsError:
        raise WarehouseError(
            "no Google credentials for BigQuery: run `gcloud auth application-default login`, "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
            f"(for an emulator set warehouse.api_endpoint or ${EMULATOR_VARIABLE})",
            transient=False,
        ) from None
    return bigquery.Client(project=project, credentials=credentials)
