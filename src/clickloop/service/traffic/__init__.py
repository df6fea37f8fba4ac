"""``clickloop simulate-traffic``: the persona click model as the users of a running service.

It drives the online loop end to end over HTTP (serve -> click -> scheduled iteration -> new pool) and
reports pool CTR per iteration. :mod:`.users` is the click model's side (values in, values out),
:mod:`.client` the HTTP calls, :mod:`.driver` the session loop, :mod:`.report` the JSON, table and figure.
"""

from clickloop.service.traffic.client import ServiceClient
from clickloop.service.traffic.driver import Audience, TrafficPlan, TrafficRun, run_traffic
from clickloop.service.traffic.users import SessionOutcome, SimulatedUsers

__all__ = [
    "Audience",
    "ServiceClient",
    "SessionOutcome",
    "SimulatedUsers",
    "TrafficPlan",
    "TrafficRun",
    "run_traffic",
]
