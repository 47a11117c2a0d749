"""Test doubles for the services the agent reports to: real loopback HTTP servers that record what
they receive and hold it to the service's contract (``github_server``: GitHub's OpenAPI
description; ``chat_server``: Slack's Block Kit limits), with scriptable faults (``loopback``)."""
