#!/usr/bin/env python3
"""Checks the deployment files of packaging/ against the real lockwatch binary.

Kubernetes manifests: every YAML document parses and has apiVersion/kind/metadata.name; lockwatch runs as a
native sidecar (an init container with restartPolicy Always); its flags exist in `lockwatch run --help`; its
port is the binary's default listen port; liveness probes /healthz and readiness /readyz; Service, ServiceMonitor
and PodMonitor select the pod and name existing ports; the config and password file are mounted where the
config says; the ConfigMap's config and the packaged default config are accepted by the binary. A running agent
with an unreachable database serves /healthz (200) and becomes ready on /readyz. The Containerfile is
multi-stage Debian 12, non-root, exposes the default port and runs `lockwatch run`.

Usage: manifests_test.py SOURCE_DIR LOCKWATCH_BINARY
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    print("FAIL - python3-yaml is not installed (apt-get install python3-yaml)")
    sys.exit(1)

SRC, BINARY = sys.argv[1], sys.argv[2]
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    print(("ok   - " if ok else "FAIL - ") + what)
    if not ok:
        failures.append(what)
    return ok


def run_help():
    out = subprocess.run([BINARY, "run", "--help"], capture_output=True, text=True, timeout=10)
    text = out.stdout + out.stderr
    if not check("Usage: lockwatch run" in text, "`lockwatch run --help` describes the run command"):
        print(text)
        sys.exit(1)
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z.-]*|-[a-z])\b", text))
    match = re.search(r"--listen.*?default [^)]*?:(\d+)\)", text, re.S)
    check(match is not None, "run --help states the default listen port")
    return flags, int(match.group(1)) if match else -1


def start_agent(args):
    """Starts `lockwatch run` with JSON logs; returns (process, port) once it serves."""
    proc = subprocess.Popen([BINARY, "run", "--log-format", "json", "--listen", "127.0.0.1:0"] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("msg") == "serving metrics" and "port" in event:
            return proc, int(event["port"])
    proc.kill()
    proc.wait()
    return None, -1


def stop_agent(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return -1, str(e)


def config_accepted(text, what):
    """The binary starts with this config (exit 2 = invalid) and stops with 0 on SIGTERM."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        proc = subprocess.Popen([BINARY, "run", "--config", path, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=2)
            check(False, f"{what} accepted by lockwatch run (exited {proc.returncode}: {err.strip()[:400]})")
            return
        except subprocess.TimeoutExpired:
            pass
        code = stop_agent(proc)
        check(code == 0, f"{what} accepted by lockwatch run (exit {code} on SIGTERM)")
    finally:
        os.unlink(path)


def load_manifests():
    docs = []
    folder = os.path.join(SRC, "packaging", "kubernetes")
    files = sorted(f for f in os.listdir(folder) if f.endswith((".yaml", ".yml")))
    check(len(files) > 0, f"YAML files in {folder}")
    for name in files:
        with open(os.path.join(folder, name)) as f:
            try:
                file_docs = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                check(False, f"{name} parses: {e}")
                continue
        check(len(file_docs) > 0, f"{name} parses ({len(file_docs)} documents)")
        for d in file_docs:
            ok = isinstance(d, dict) and all(k in d for k in ("apiVersion", "kind", "metadata")) and \
                "name" in d["metadata"]
            check(ok, f"{name}: {d.get('kind') if isinstance(d, dict) else d!r} has apiVersion, kind, metadata.name")
            if ok:
                docs.append(d)
    return docs


def subset(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_port(port, container, default_port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_kubernetes(flags, default_port):
    docs = load_manifests()
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("ConfigMap", "Secret", "Service", "ServiceMonitor", "PodMonitor"):
        check(kind in by_kind, f"manifests contain a {kind}")
    for kind in ("ServiceMonitor", "PodMonitor"):
        for d in by_kind.get(kind, []):
            check(d["apiVersion"] == "monitoring.coreos.com/v1", f"{kind} apiVersion monitoring.coreos.com/v1")
    workloads = by_kind.get("StatefulSet", []) + by_kind.get("Deployment", []) + by_kind.get("Pod", [])
    if not check(len(workloads) > 0, "a StatefulSet, Deployment or Pod"):
        return
    for w in workloads:
        pod = w["spec"] if w["kind"] == "Pod" else w["spec"]["template"]["spec"]
        pod_labels = w["metadata"].get("labels", {}) if w["kind"] == "Pod" else \
            w["spec"]["template"]["metadata"].get("labels", {})
        if w["kind"] != "Pod":
            check(subset(w["spec"]["selector"]["matchLabels"], pod_labels),
                  f"{w['kind']} selector matches its pod template")
        sidecars = [c for c in pod.get("initContainers", []) if c.get("name") == "lockwatch"]
        if not check(len(sidecars) == 1, f"{w['kind']} {w['metadata']['name']}: lockwatch is an init container"):
            continue
        c = sidecars[0]
        check(c.get("restartPolicy") == "Always", "lockwatch init container has restartPolicy: Always (native sidecar)")
        check(all(m.get("name") != "lockwatch" for m in pod.get("containers", [])), "lockwatch is not a main container")
        check(any("postgres" in m.get("image", "") for m in pod.get("containers", [])), "a PostgreSQL main container")
        for arg in c.get("args", []) + c.get("command", [])[2:]:
            if arg.startswith("-"):
                flag = arg.split("=", 1)[0]
                check(flag in flags, f"lockwatch arg {flag} exists in `lockwatch run --help`")
        ports = c.get("ports", [])
        check([p.get("containerPort") for p in ports] == [default_port],
              f"lockwatch containerPort is the default listen port {default_port}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get_ = c.get(probe, {}).get("httpGet", {})
            check(get_.get("path") == path, f"{probe} path {path}")
            check(resolve_port(get_.get("port"), c, default_port) == default_port, f"{probe} port is {default_port}")
        if "startupProbe" in c:
            check(c["startupProbe"].get("httpGet", {}).get("path") == "/healthz", "startupProbe path /healthz")
        sc = c.get("securityContext", {})
        check(sc.get("runAsNonRoot") is True and sc.get("allowPrivilegeEscalation") is False and
              sc.get("readOnlyRootFilesystem") is True, "lockwatch securityContext: non-root, no escalation, ro root")

        # Config file: the --config path is a ConfigMap key mounted there; its password_file is a mounted Secret key.
        config_path = next((a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--config=")), None)
        if not check(config_path is not None, "lockwatch is started with --config=PATH"):
            continue
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        config_text = None
        for m in c.get("volumeMounts", []):
            v = volumes.get(m["name"], {})
            if "configMap" in v:
                key = m.get("subPath") or os.path.relpath(config_path, m["mountPath"])
                target = m["mountPath"] if m.get("subPath") else os.path.join(m["mountPath"], key)
                if target == config_path:
                    cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == v["configMap"]["name"]]
                    if cms and key in cms[0].get("data", {}):
                        config_text = cms[0]["data"][key]
        if not check(config_text is not None, f"{config_path} is mounted from a ConfigMap key"):
            continue
        config = yaml.safe_load(config_text)
        targets = config.get("targets", [])
        check(len(targets) > 0, "the ConfigMap config names a target")
        for t in targets:
            pw = t.get("password_file")
            if not pw:
                continue
            found = False
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"], {})
                if "secret" in v and os.path.dirname(pw) == m["mountPath"].rstrip("/"):
                    secrets = [d for d in by_kind.get("Secret", []) if d["metadata"]["name"] == v["secret"]["secretName"]]
                    keys = set(secrets[0].get("stringData", {})) | set(secrets[0].get("data", {})) if secrets else set()
                    found = os.path.basename(pw) in keys
            check(found, f"password_file {pw} is a key of a mounted Secret")
        listen_port = int(str(config.get("listen", ":%d" % default_port)).rsplit(":", 1)[1])
        check(listen_port == default_port, f"the ConfigMap config listens on {default_port}")
        config_accepted(config_text, "the ConfigMap's lockwatch.yaml")

        for s in by_kind.get("Service", []):
            if not subset(s["spec"].get("selector", {}), pod_labels):
                continue
            for p in s["spec"]["ports"]:
                check(resolve_port(p.get("targetPort", p["port"]), c, default_port) == default_port,
                      f"Service {s['metadata']['name']} port {p.get('name')} targets {default_port}")
            for sm in by_kind.get("ServiceMonitor", []):
                check(subset(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {})),
                      "ServiceMonitor selects the Service")
                names = {p.get("name") for p in s["spec"]["ports"]}
                for e in sm["spec"]["endpoints"]:
                    check(e.get("port") in names, f"ServiceMonitor endpoint port {e.get('port')} is a Service port")
                    check(e.get("path", "/metrics") == "/metrics", "ServiceMonitor path /metrics")
        for pm in by_kind.get("PodMonitor", []):
            check(subset(pm["spec"]["selector"]["matchLabels"], pod_labels), "PodMonitor selects the pod")
            for e in pm["spec"]["podMetricsEndpoints"]:
                check(resolve_port(e.get("port"), c, default_port) == default_port,
                      f"PodMonitor port {e.get('port')} is the lockwatch port")
                check(e.get("path", "/metrics") == "/metrics", "PodMonitor path /metrics")


def check_endpoints():
    # A database that cannot be reached: liveness must not depend on it, readiness must not wait for it forever.
    proc, port = start_agent(["--dsn", "host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1",
                              "--interval", "200ms"])
    if not check(proc is not None, "lockwatch run serves (log line `serving metrics` with the port)"):
        return
    try:
        status, _ = get(port, "/healthz")
        check(status == 200, f"/healthz is 200 with the database down (got {status})")
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            status, _ = get(port, "/readyz")
            if status == 200:
                break
            time.sleep(0.2)
        check(status == 200, f"/readyz becomes 200 after the first (failed) poll attempt (got {status})")
        status, body = get(port, "/metrics")
        check(status == 200 and re.search(r"^lockwatch_up\{[^}]*\} 0$", body, re.M) is not None,
              "/metrics reports lockwatch_up 0 for the unreachable target")
        status, _ = get(port, "/healthz")
        check(status == 200, "/healthz still 200 after failed polls")
    finally:
        code = stop_agent(proc)
        check(code == 0, f"lockwatch run exits 0 on SIGTERM (got {code})")


def check_containerfile(default_port):
    with open(os.path.join(SRC, "packaging", "container", "Containerfile")) as f:
        text = f.read()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]
    froms = [i for i in instructions if i.upper().startswith("FROM ")]
    check(len(froms) >= 2, "Containerfile is multi-stage")
    check(all(re.match(r"FROM debian:(12|bookworm)(-slim)?\b", f) for f in froms), "every stage is Debian 12")
    last = max(idx for idx, i in enumerate(instructions) if i.upper().startswith("FROM "))
    runtime = instructions[last:]
    check(not any("-dev" in i for i in runtime if i.startswith("RUN")), "the runtime stage installs no -dev package")
    users = [i.split()[1] for i in runtime if i.startswith("USER ")]
    check(len(users) == 1 and users[0].split(":")[0] not in ("root", "0"), f"runtime USER is non-root ({users})")
    exposes = [i.split()[1:] for i in runtime if i.startswith("EXPOSE ")]
    check(exposes == [[str(default_port)]], f"EXPOSE {default_port}")
    entry = [i for i in runtime if i.startswith("ENTRYPOINT ")]
    check(len(entry) == 1 and json.loads(entry[0][len("ENTRYPOINT "):]) == ["lockwatch", "run"],
          'ENTRYPOINT ["lockwatch", "run"]')
    check(any(re.match(r"COPY --from=\S+ \S+ /usr/bin/lockwatch$", i) for i in runtime),
          "the runtime stage copies only the binary to /usr/bin/lockwatch")
    uid = users[0].split(":")[0] if users else None
    k8s = open(os.path.join(SRC, "packaging", "kubernetes", "lockwatch-postgres.yaml")).read()
    check(uid is not None and f"runAsUser: {uid}" in k8s, f"Kubernetes runAsUser matches the image user {uid}")


def main():
    flags, default_port = run_help()
    check(default_port == 9817, f"default listen port is the documented 9817 (binary says {default_port})")
    check_kubernetes(flags, default_port)
    with open(os.path.join(SRC, "packaging", "config", "lockwatch.yaml")) as f:
        packaged = f.read()
    config_accepted(packaged, "packaging/config/lockwatch.yaml")
    check(f'listen: ":{default_port}"' in packaged, f"the packaged config listens on {default_port}")
    check_endpoints()
    check_containerfile(default_port)
    print(f"# {checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
