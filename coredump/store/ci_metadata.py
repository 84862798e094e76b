"""
CI metadata
===========

Which CI job a crash came from, read from each provider's documented variables (CircleCI
"Project values and variables", GitHub "Default environment variables", GitLab "Predefined
CI/CD variables"), for summary.json's ``ci`` object, index.html and the job id of an upload.
Values are environment text: bounded in length, without control characters, and a URL only
when it is http(s).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Callable, Dict, Mapping, Optional

__all__ = ("ci_metadata", "ci_job_id", "clean_field", "FIELDS")

FIELDS = ("provider", "repository", "commit", "branch", "tag", "pull_request", "job", "build_number",
          "job_url", "pipeline_url")
MAX_VALUE = 512
_URL = re.compile(r"https?://[^\s\"'<>]+")
_ID = re.compile(r"[^A-Za-z0-9_-]+")
# C0/C1 controls, DEL, bidirectional overrides (as report.sanitize, which this layer may not import)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _circleci(env: Mapping[str, str]) -> Dict[str, Optional[str]]:
    user, repo = env.get("CIRCLE_PROJECT_USERNAME"), env.get("CIRCLE_PROJECT_REPONAME")
    workflow = env.get("CIRCLE_WORKFLOW_ID")
    return {"provider": "circleci", "repository": f"{user}/{repo}" if user and repo else None,
            "commit": env.get("CIRCLE_SHA1"), "branch": env.get("CIRCLE_BRANCH"), "tag": env.get("CIRCLE_TAG"),
            "pull_request": env.get("CIRCLE_PULL_REQUEST"), "job": env.get("CIRCLE_JOB"),
            "build_number": env.get("CIRCLE_BUILD_NUM"), "job_url": env.get("CIRCLE_BUILD_URL"),
            "pipeline_url": f"https://app.circleci.com/pipelines/workflows/{workflow}" if workflow else None}


def _github(env: Mapping[str, str]) -> Dict[str, Optional[str]]:
    server, repo, run = env.get("GITHUB_SERVER_URL") or "https://github.com", env.get("GITHUB_REPOSITORY"), \
        env.get("GITHUB_RUN_ID")
    run_url = f"{server}/{repo}/actions/runs/{run}" if repo and run else None
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    ref_type, ref_name = env.get("GITHUB_REF_TYPE"), env.get("GITHUB_REF_NAME")
    pull = re.fullmatch(r"refs/pull/(\d+)/merge", env.get("GITHUB_REF") or "")
    return {"provider": "github", "repository": repo, "commit": env.get("GITHUB_SHA"),
            # a pull request's branch is its head (GITHUB_HEAD_REF); GITHUB_REF_NAME is "N/merge" there
            "branch": env.get("GITHUB_HEAD_REF") or (ref_name if ref_type == "branch" else None),
            "tag": ref_name if ref_type == "tag" else None,
            "pull_request": f"{server}/{repo}/pull/{pull.group(1)}" if pull and repo else None,
            "job": env.get("GITHUB_JOB"),
            "build_number": f"{run}-{attempt}" if run and attempt else run,
            "job_url": f"{run_url}/attempts/{attempt}" if run_url and attempt else run_url,
            "pipeline_url": run_url}


def _gitlab(env: Mapping[str, str]) -> Dict[str, Optional[str]]:
    return {"provider": "gitlab", "repository": env.get("CI_PROJECT_PATH"), "commit": env.get("CI_COMMIT_SHA"),
            "branch": env.get("CI_COMMIT_BRANCH") or env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"),
            "tag": env.get("CI_COMMIT_TAG"), "pull_request": env.get("CI_MERGE_REQUEST_IID"),
            "job": env.get("CI_JOB_NAME"), "build_number": env.get("CI_JOB_ID"), "job_url": env.get("CI_JOB_URL"),
            "pipeline_url": env.get("CI_PIPELINE_URL")}


# The variable each provider sets to "true" in every job, and how to read the rest.
_PROVIDERS: Dict[str, Callable[[Mapping[str, str]], Dict[str, Optional[str]]]] = {
    "CIRCLECI": _circleci, "GITHUB_ACTIONS": _github, "GITLAB_CI": _gitlab}


def clean_field(key: str, value: Optional[str], limit: int = MAX_VALUE) -> Optional[str]:
    """`value` as a field of the ``ci`` object (or, with another `key`, any text read from a
    job): no control characters, at most `limit` characters, a ``*_url`` only when http(s)."""
    if not value:
        return None
    text = _CONTROLS.sub("", value)[:limit].strip()
    if key.endswith("_url") or (key == "pull_request" and "://" in text):
        return text if _URL.fullmatch(text) else None
    return text or None


def ci_metadata(environ: Optional[Mapping[str, str]] = None) -> Optional[Dict[str, Optional[str]]]:
    """The CI job this process runs in, as summary.json's ``ci`` object; None outside CI."""
    env = os.environ if environ is None else environ
    for variable, read in _PROVIDERS.items():
        if env.get(variable) == "true":
            raw = read(env)
            return {key: clean_field(key, raw.get(key)) for key in FIELDS}
    return None


def ci_job_id(meta: Optional[Dict[str, Optional[str]]]) -> Optional[str]:
    """A job id from the CI's build number (``circleci-1234``, ``github-987-1-test``,
    ``gitlab-5678``), the same for every upload of one job; None outside CI."""
    if not meta or not meta.get("build_number"):
        return None
    parts = [meta["provider"], meta["build_number"]] + ([meta["job"]] if meta["provider"] == "github" and
                                                          meta.get("job") else [])
    return re.sub("-+", "-", _ID.sub("-", "-".join(str(p) for p in parts))).strip("-")[:128] or None
