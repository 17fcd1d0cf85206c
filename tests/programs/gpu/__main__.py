"""A test program: a fleet whose first two hosts declare SIMULATED GPU cards, a GPU function placed on them by a
label, and its ProvisionConfig (config: fleetFile, target, schedule)."""

import json

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet_args = fc.FleetArgs.from_fleet_file(config.require("fleetFile"))
for host in fleet_args.hosts[:2]:
    host.labels = {"gpu": "sim"}
    host.gpus = fc.HostGpusArgs(simulated=[fc.SimulatedGpuArgs(type="fc.gpu.tesla.1", count=2)]).to_input()
    host.capacity = {"cpu": 8, "memory_mb": 65536}
fleet = fc.Fleet("fleet", fleet_args)
server = ("import os; from http.server import BaseHTTPRequestHandler as B, ThreadingHTTPServer as S\n"
          "class H(B):\n"
          "    def log_message(self, *a): pass\n"
          "    def do_GET(self): self.send_response(200); self.send_header('content-length', '0'); self.end_headers()\n"
          "    def do_POST(self):\n"
          "        body = os.environ['FC_GPU_UUIDS'].encode()\n"
          "        self.send_response(200); self.send_header('content-length', str(len(body))); self.end_headers()\n"
          "        self.wfile.write(body)\n"
          "S(('0.0.0.0', 9000), H).serve_forever()\n")
fn = fc.Function("sd", fc.FunctionArgs(
    function_name="sd", runtime="custom-container", cpu=0.25, memory_size=256, timeout=10, max_instances=2,
    custom_container_config=fc.CustomContainerConfigArgs(image="fc-runtime/python3.11", port=9000,
                                                         entrypoint=["python3", "-c"], command=[server]),
    gpu_config=fc.GpuConfigArgs(gpu_type="fc.gpu.tesla.1", gpu_memory_size=16384),
    placement=fc.PlacementArgs(selector={"gpu": "sim"}, replicas=2)), fleet=fleet)
schedule = json.loads(config.get("schedule") or "[]")
provision = fc.ProvisionConfig("sd-provision", fc.ProvisionConfigArgs(
    target=config.get_int("target") or 0,
    scheduled_actions=[fc.ScheduledActionArgs(**a) for a in schedule]), function=fn, fleet=fleet)
pool_cards = config.get_int("pool")
if pool_cards:
    pool = fc.GpuPool("pool", fc.GpuPoolArgs(gpu_type="fc.gpu.tesla.1", count=pool_cards, selector={"gpu": "sim"},
                                             functions=["sd"]), fleet=fleet)
    for name in ("host_names", "pool_hosts", "free", "used"):
        pulumi.export(name if name.startswith("pool_") else f"pool_{name}", getattr(pool, name))
pulumi.export("hosts", fn.hosts)
for name in ("current", "current_error", "fleet_target", "host_targets", "function_arn"):
    pulumi.export(name, getattr(provision, name))
