/*
 * test/browser/lib.js: helpers shared by the real-browser tests.
 * Owns: launching Debian's chromium through playwright-core (never a
 * downloaded browser), running aegis-bridge as a child process by pid,
 * publishing through psql (libpq's PG* environment), bounded waits, and the
 * TAP-like "ok - name" / "not ok - name" lines the suites print.
 */
"use strict";

const { chromium } = require("playwright-core");
const { spawn, execFileSync } = require("child_process");
const fs = require("fs");
const http = require("http");
const https = require("https");

const CHROMIUM = process.env.AEGIS_CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking", "--disable-component-update",
  "--disable-sync"];

let passed = 0, failed = 0;

function ok(name) { passed += 1; console.log("ok - " + name); }
function notOk(name, why) { failed += 1; console.log("not ok - " + name + (why ? " (" + why + ")" : "")); }
function check(name, cond, why) { if (cond) ok(name); else notOk(name, why); return cond; }
function diag(msg) { console.log("# " + String(msg).split("\n").join("\n# ")); }
function counts() { return { passed, failed }; }

/* launchBrowser(): headless Debian chromium; playwright gives it a fresh profile */
async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(CHROMIUM + " not found (apt-get install chromium)");
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/* waitFor(what, fn, timeoutMs): polls async fn until truthy; throws naming `what` */
async function waitFor(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error("timed out after " + timeoutMs + " ms waiting for " + what);
}

/* httpStatus(url, headers): the status code of a GET (body ignored), or 0;
 * an https URL is fetched over HTTP/1.1 + TLS without checking the test
 * certificate (only the status matters) */
function httpStatus(url, headers) {
  const tls = url.startsWith("https:");
  return new Promise((resolve) => {
    const req = (tls ? https : http).get(url, { headers: headers || {}, rejectUnauthorized: false }, (res) => {
      resolve(res.statusCode);
      res.destroy();
    });
    req.on("error", () => resolve(0));
    req.setTimeout(5000, () => { req.destroy(); resolve(0); });
  });
}

/* psql(sql): runs one statement, returns trimmed unaligned output */
function psql(sql) {
  return execFileSync("psql", ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
    { encoding: "utf8" }).trim();
}

/* sqlLiteral(s): a quoted SQL string literal */
function sqlLiteral(s) { return "'" + String(s).replace(/'/g, "''") + "'"; }

/*
 * Bridge: aegis-bridge as a child process.  start() waits until it answers
 * HTTP; stop(signal) waits until it is gone.  Its pid is written to pidFile
 * on every start so the calling suite's trap can stop it if node dies.
 */
class Bridge {
  constructor(bin, args, logFile, pidFile) {
    this.bin = bin; this.args = args; this.logFile = logFile; this.pidFile = pidFile;
    this.child = null; this.starts = 0;
  }

  async start(baseUrl) {
    const log = fs.openSync(this.logFile, "a");
    this.child = spawn(this.bin, this.args, { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    this.starts += 1;
    if (this.pidFile) fs.appendFileSync(this.pidFile, this.child.pid + "\n");
    const child = this.child;
    let exited = false;
    child.on("exit", () => { exited = true; });
    await waitFor("aegis-bridge to answer on " + baseUrl, async () => {
      if (exited) throw new Error("aegis-bridge exited at start; see " + this.logFile);
      return (await httpStatus(baseUrl + "/")) !== 0;
    }, 20000);
  }

  async stop(signal) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.on("exit", r));
    child.kill(signal || "SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 10000);
    await gone;
    clearTimeout(t);
    this.child = null;
  }
}

/* finish(): prints the tally and sets the exit status */
function finish(name) {
  console.log("# " + name + ": " + passed + " passed, " + failed + " failed");
  process.exitCode = failed === 0 ? 0 : 1;
}

module.exports = { ok, notOk, check, diag, counts, finish, launchBrowser, waitFor, sleep,
  httpStatus, psql, sqlLiteral, Bridge };
