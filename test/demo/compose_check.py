#!/usr/bin/env python3
"""test/demo/compose_check.py: checks docker-compose.yml against the project.

Docker does not run on our machines, so this reads the compose file and its
Dockerfiles and checks that everything they name exists in the project: the
services and how they are wired (ports, URLs, listeners), every environment
variable (the bridge reads it, the image documents it), every file copied,
the seed's Kafka settings, and that the images build with the commands of a
local install (`make && make install` for the extension, `make bridge &&
make install-bridge` for the daemon) and only the Debian packages
scripts/install-deps.sh knows.
Prints "ok - ..." / "not ok - ..." lines; run by test/suites/85-compose.sh.

  compose_check.py TOP [COMPOSE_FILE]     (default TOP/docker-compose.yml)
"""
import os
import re
import sys
from urllib.parse import urlparse

import yaml

TOP = sys.argv[1] if len(sys.argv) > 1 else "."
COMPOSE = sys.argv[2] if len(sys.argv) > 2 else os.path.join(TOP, "docker-compose.yml")
failed = 0

# The seed's Kafka service (docs of the system we re-create, "Infrastructure Configuration").
SEED_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
SEED_KAFKA_ENV = {
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk",
}
SEED_LISTENERS = ["PLAINTEXT://0.0.0.0:9092", "CONTROLLER://0.0.0.0:9093"]
SEED_ADVERTISED = ["PLAINTEXT://localhost:9092"]
SEED_PROTOCOLS = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
SEED_KAFKA_VOLUME = ("./docker-volumes/kafka", "/var/lib/kafka/data")
# Variables the official postgres image's entrypoint reads.
POSTGRES_IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS",
                      "POSTGRES_INITDB_WALDIR", "POSTGRES_HOST_AUTH_METHOD", "PGDATA"}


def check(name, cond, why=""):
    global failed
    if cond:
        print("ok - compose: " + name)
    else:
        failed += 1
        print("not ok - compose: " + name + (" (" + str(why) + ")" if why else ""))
    return cond


def path(*parts):
    return os.path.join(TOP, *parts)


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def ports_of(service):
    """[(host_ip, host_port, container_port)] from "ip:host:container" strings"""
    out = []
    for p in service.get("ports") or []:
        parts = str(p).split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        else:
            out.append(("0.0.0.0", parts[0], parts[-1]))
    return out


def dockerfile(service):
    """(instructions [(KEYWORD, args)], context dir) of a service's build"""
    build = service["build"]
    ctx = path(build.get("context", "."))
    text = open(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))).read()
    text = re.sub(r"\\\n", " ", text)
    instr = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            kw, _, args = line.partition(" ")
            instr.append((kw.upper(), " ".join(args.split())))
    return instr, ctx


def bridge_env_names():
    src = open(path("bridge", "config.c")).read()
    return set(re.findall(r'\{\s*"--?[\w-]+",\s*"([A-Z][A-Z0-9_]*)"', src))


def install_deps_packages():
    src = open(path("scripts", "install-deps.sh")).read()
    m = re.search(r"packages=\((.*?)\)", src, re.S)
    words = re.sub(r"#.*", "", m.group(1)).split() if m else []
    words += re.findall(r"\]=([\w.+-]+)", src)
    return set(words)


def listeners(value):
    """{name: (host, port)} from "NAME://host:port,..." """
    out = {}
    for item in value.split(","):
        name, _, hostport = item.partition("://")
        host, _, port = hostport.rpartition(":")
        out[name] = (host, port)
    return out


# the build command of each image: the one a local install runs (top Makefile)
LOCAL_BUILD = {"postgres": "make && make install",
               "bridge": "make bridge && make install-bridge"}


def check_dockerfile(name, service, deps):
    instr, ctx = dockerfile(service)
    runs = [a for k, a in instr if k == "RUN"]
    builds = [r for r in runs if re.search(r"\bmake\b", r)]
    check(name + ": the image builds with `" + LOCAL_BUILD[name] + "`, as a local install does",
          builds == [LOCAL_BUILD[name]], builds)
    missing = []
    for k, a in instr:
        if k == "COPY" and not a.startswith("--from"):
            for src in a.split()[:-1]:
                if not os.path.exists(os.path.join(ctx, src)):
                    missing.append(src)
    check(name + ": every file it copies exists", not missing, missing)
    apt = set()
    for r in runs:
        m = re.search(r"apt-get install (.*?)(&&|$)", r)
        if m and "build-essential" in m.group(1):
            apt |= {w for w in m.group(1).split() if not w.startswith("-")}
    check(name + ": its build packages are ones scripts/install-deps.sh installs",
          apt and apt <= deps, sorted(apt - deps))
    return instr


def main():
    doc = yaml.safe_load(open(COMPOSE))
    services = doc.get("services") or {}
    check("docker-compose.yml parses, with services postgres, kafka, bridge",
          set(services) == {"postgres", "kafka", "bridge"}, sorted(services))
    pg, kafka, bridge = services["postgres"], services["kafka"], services["bridge"]
    deps = install_deps_packages()

    # every published port binds the loopback, and every depends_on names a service
    for n, s in services.items():
        check(n + ": ports published on 127.0.0.1 only",
              all(ip == "127.0.0.1" for ip, _, _ in ports_of(s)), ports_of(s))
        dep = s.get("depends_on") or {}
        check(n + ": depends_on names existing services", set(dep) <= set(services), dep)

    # ---- kafka: the seed's settings ----
    kenv = env_of(kafka)
    check("kafka: image " + SEED_KAFKA_IMAGE, kafka.get("image") == SEED_KAFKA_IMAGE, kafka.get("image"))
    for k, v in SEED_KAFKA_ENV.items():
        check("kafka: %s=%s (seed)" % (k, v), kenv.get(k) == v, kenv.get(k))
    lst = kenv.get("KAFKA_LISTENERS", "").split(",")
    adv = kenv.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
    proto = kenv.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",")
    check("kafka: the seed's listeners", all(x in lst for x in SEED_LISTENERS), lst)
    check("kafka: the seed's advertised listener", all(x in adv for x in SEED_ADVERTISED), adv)
    check("kafka: the seed's protocol map", all(x in proto for x in SEED_PROTOCOLS), proto)
    names = {p.split(":")[0] for p in proto}
    check("kafka: every listener has a security protocol",
          set(listeners(",".join(lst))) <= names, sorted(set(listeners(",".join(lst))) - names))
    advl = listeners(",".join(adv))
    check("kafka: advertised listeners are declared listeners, CONTROLLER not among them (Kafka 3.6 refuses it)",
          set(advl) <= set(listeners(",".join(lst))) and "CONTROLLER" not in advl, sorted(advl))
    check("kafka: the client port 9092 is published",
          any(c == "9092" for _, _, c in ports_of(kafka)), ports_of(kafka))
    vols = [tuple(str(v).split(":")[:2]) for v in kafka.get("volumes") or []]
    check("kafka: persistent volume %s:%s (seed)" % SEED_KAFKA_VOLUME, SEED_KAFKA_VOLUME in vols, vols)

    # ---- postgres ----
    penv = env_of(pg)
    check("postgres: every variable is one the postgres image reads",
          set(penv) <= POSTGRES_IMAGE_ENV, sorted(set(penv) - POSTGRES_IMAGE_ENV))
    pinstr = check_dockerfile("postgres", pg, deps)
    control = open(path("aegis_events.control")).read()
    module = re.search(r"module_pathname\s*=\s*'\$libdir/([\w-]+)'", control).group(1)
    cmd = " ".join(a for k, a in pinstr if k == "CMD")
    check("postgres: preloads the extension's module (%s)" % module,
          "shared_preload_libraries=" + module in cmd, cmd)
    pg_from = [a for k, a in pinstr if k == "FROM"][0]
    check("postgres: PostgreSQL 15, the version the project builds against (postgresql-server-dev-15)",
          pg_from.startswith("postgres:15") and "postgresql-server-dev-15" in deps, pg_from)
    initdb = [a.split()[0] for k, a in pinstr if k == "COPY" and "docker-entrypoint-initdb.d" in a]
    sql = "".join(open(os.path.join(path(initdb[0]), f)).read()
                  for f in sorted(os.listdir(path(initdb[0]))) if f.endswith(".sql")) if initdb else ""
    check("postgres: the init script creates the extension", "CREATE EXTENSION aegis_events" in sql, initdb)
    hc = " ".join(pg.get("healthcheck", {}).get("test", []))
    check("postgres: the healthcheck uses the configured user and database",
          "-U " + penv.get("POSTGRES_USER", "?") in hc and "-d " + penv.get("POSTGRES_DB", "?") in hc, hc)

    # ---- bridge ----
    benv = env_of(bridge)
    known = bridge_env_names()
    check("bridge: every variable is one aegis-bridge reads (bridge/config.c)",
          known and set(benv) <= known, sorted(set(benv) - known))
    binstr = check_dockerfile("bridge", bridge, deps)
    image_env = set(re.findall(r"([A-Z][A-Z0-9_]*)=", " ".join(a for k, a in binstr if k == "ENV")))
    check("bridge: every ENV of its image is one aegis-bridge reads", image_env and image_env <= known,
          sorted(image_env - known))
    db = urlparse(benv.get("DATABASE_URL", ""))
    check("bridge: DATABASE_URL points at the postgres service with its user, password and database",
          db.hostname == "postgres" and str(db.port) in [c for _, _, c in ports_of(pg)] and
          db.username == penv.get("POSTGRES_USER") and db.password == penv.get("POSTGRES_PASSWORD") and
          db.path.lstrip("/") == penv.get("POSTGRES_DB"), benv.get("DATABASE_URL"))
    host, _, port = benv.get("KAFKA_BOOTSTRAP_SERVERS", "").rpartition(":")
    check("bridge: KAFKA_BOOTSTRAP_SERVERS is a listener kafka advertises inside the network",
          host == "kafka" and (host, port) in advl.values(), benv.get("KAFKA_BOOTSTRAP_SERVERS"))
    lport = benv.get("AEGIS_LISTEN", "").rpartition(":")[2]
    check("bridge: the port it listens on is the one published (8001)",
          ("127.0.0.1", "8001", lport) in ports_of(bridge), (lport, ports_of(bridge)))
    web = [a.split()[-1].rstrip("/") for k, a in binstr if k == "COPY" and a.split()[0].rstrip("/") == "web"]
    check("bridge: AEGIS_STATIC_DIR is where the image copies web/ (the dashboard)",
          web and benv.get("AEGIS_STATIC_DIR") == web[0] and os.path.exists(path("web", "index.html")),
          (benv.get("AEGIS_STATIC_DIR"), web))
    entry = " ".join(a for k, a in binstr if k == "ENTRYPOINT")
    copied = [a.split()[-1] for k, a in binstr if k == "COPY" and a.startswith("--from")]
    check("bridge: the entrypoint is the binary copied from the build stage",
          any(c in entry for c in copied), (entry, copied))
    deps_in = bridge.get("depends_on") or {}
    check("bridge: starts after postgres is healthy and after kafka",
          deps_in.get("postgres", {}).get("condition") == "service_healthy" and "kafka" in deps_in, deps_in)

    # the paths `make install-bridge` must produce for the images (checked by the suite with DESTDIR)
    for k, a in binstr:
        if k == "COPY" and a.startswith("--from"):
            print("# installed-path " + a.split()[1])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
