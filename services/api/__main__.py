"""``python -m services.api``: the read API on LOYALTY_API_HOST:LOYALTY_API_PORT (127.0.0.1:8080)."""

import sys

import uvicorn

from services.config.logs import configure_logging
from services.config.programs import ProgramsConfigError, load_programs
from services.config.settings import Settings

settings = Settings()
configure_logging(settings.log_level, settings.log_format, "api")
try:
    load_programs(settings.programs_file)  # fail here, with a clear message, not in a worker
except ProgramsConfigError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
uvicorn.run(
    "services.api.app:app_from_env",
    factory=True,
    host=settings.api_host,
    port=settings.api_port,
    workers=settings.api_workers,
    access_log=False,
    log_config=None,  # uvicorn's loggers keep services.config.logs's JSON handler
    log_level=settings.log_level.lower(),
    proxy_headers=True,
)
