// The built-in Node.js runtime (nodejs18, nodejs20): runs inside every event-function container, Node's own
// modules only. The Node.js twin of runtime.py, with the same contract towards the agent:
//
//   POST /invoke      calls the handler: `exports.handler = async (event, context) => result`, or the callback form
//                     `exports.handler = (event, context, callback) => callback(err, result)`; the event is a Buffer
//   POST /initialize  calls the initializer named in x-fc-initializer: `(context)` async, or `(context, callback)`
//   POST /pre-stop    calls the pre_stop hook named in x-fc-pre-stop, likewise
//   GET  /            answers 200 (the agent polls it until the instance is ready)
//
// A function's own error (thrown, rejected, or passed to the callback) is not an HTTP error: 200 with
// x-fc-error-type: UnhandledInvocationError and FC's error JSON {errorMessage, errorType, stackTrace}. The runtime
// serves one request at a time, as FC's built-in runtimes do; x-fc-log-result carries the last 4 KB of what the
// request wrote to stdout and stderr.
//
// As a stem cell (FC_STEM_CELL_TOKEN set; runtime_agent/instances/stemcells.py) it starts with no function: it
// answers GET / and refuses everything else until the agent's POST /assign (carrying that token) gives it the
// function's environment, handler included; only then does it look at /code, where the agent has mounted the code
// by then. It is assigned once for its whole life.
"use strict";

const crypto = require("crypto");
const http = require("http");
const path = require("path");

const CODE_DIR = process.env.FC_FUNC_CODE_PATH || "/code";
const PORT = parseInt(process.env.FC_RUNTIME_PORT || "9000", 10);
const LOG_TAIL_BYTES = 4096;
const STEM_CELL_TOKEN = process.env.FC_STEM_CELL_TOKEN;
let assigned = !STEM_CELL_TOKEN;

let captured = null; // the current request's output, or null between requests
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, done) => {
    if (captured !== null) {
      const text = typeof encoding === "string" ? encoding : "utf8";
      captured.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), text));
    }
    return write(chunk, encoding, done);
  };
}

function logger(requestId) {
  const line = (level) => (...args) => {
    const text = args.map((a) => (typeof a === "string" ? a : require("util").inspect(a))).join(" ");
    process.stdout.write(`${new Date().toISOString()} ${requestId} [${level}] ${text}\n`);
  };
  return { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error"), log: line("info") };
}

function context(requestId, qualifier) {
  const env = process.env;
  return {
    requestId,
    credentials: { accessKeyId: "", accessKeySecret: "", securityToken: "" },
    function: {
      name: env.FC_FUNCTION_NAME || "",
      handler: env.FC_FUNCTION_HANDLER || "",
      memory: parseInt(env.FC_FUNCTION_MEMORY_SIZE || "0", 10),
      timeout: parseInt(env.FC_FUNCTION_TIMEOUT || "0", 10),
    },
    service: {
      name: "", logProject: "", logStore: "",
      qualifier: qualifier || env.FC_QUALIFIER || "LATEST", // what the caller asked for (an alias, say)
      versionId: env.FC_QUALIFIER === "LATEST" ? "" : (env.FC_QUALIFIER || ""), // the version that runs
    },
    region: env.FC_REGION || "local",
    accountId: env.FC_ACCOUNT_ID || "",
    tracing: {},
    logger: logger(requestId),
  };
}

function load(spec) {
  const dot = spec.lastIndexOf(".");
  if (dot <= 0 || dot === spec.length - 1) {
    throw new Error(`handler '${spec}' must look like 'module.function'`);
  }
  const module = require(path.resolve(CODE_DIR, spec.slice(0, dot)));
  const fn = module[spec.slice(dot + 1)];
  if (typeof fn !== "function") {
    throw new Error(`${spec.slice(dot + 1)} is not a function exported by ${spec.slice(0, dot)}`);
  }
  return fn;
}

// Calls `fn` with `args` plus a callback when it declares one more parameter than `args`; settles on the first of
// the callback, the returned promise, or (for a plain return without a callback parameter) the returned value.
function call(fn, args) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err, value) => {
      if (settled) return;
      settled = true;
      if (err !== null && err !== undefined) reject(err);
      else resolve(value);
    };
    const wantsCallback = fn.length > args.length;
    let returned;
    try {
      returned = fn(...args, ...(wantsCallback ? [settle] : []));
    } catch (err) {
      settle(err);
      return;
    }
    if (returned && typeof returned.then === "function") {
      returned.then((value) => settle(null, value), (err) => settle(err === undefined ? new Error("rejected") : err));
    } else if (!wantsCallback) {
      settle(null, returned);
    }
  });
}

function errorBody(err) {
  const error = err instanceof Error ? err : new Error(typeof err === "string" ? err : JSON.stringify(err));
  // The user's frames only, as the Python runtime gives them: this runtime's and Node's own frames are noise.
  const stack = String(error.stack || "").split("\n").slice(1).map((s) => s.trim())
    .filter((s) => s && !s.includes("/opt/fc-runtime/") && !s.includes("(node:") && !s.includes("<anonymous>"));
  const body = { errorMessage: error.message, errorType: error.name || "Error", stackTrace: stack };
  return Buffer.from(JSON.stringify(body));
}

function bodyOf(result) {
  if (result === undefined || result === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(result)) return result;
  if (typeof result === "string") return Buffer.from(result);
  return Buffer.from(JSON.stringify(result));
}

async function serve(req, event) {
  const requestId = req.headers["x-fc-request-id"] || "";
  const ctx = context(requestId, req.headers["x-fc-qualifier"]);
  let kind = "handler";
  let spec = process.env.FC_FUNCTION_HANDLER || "";
  if (req.url.startsWith("/initialize")) [kind, spec] = ["initializer", req.headers["x-fc-initializer"] || ""];
  else if (req.url.startsWith("/pre-stop")) [kind, spec] = ["pre_stop", req.headers["x-fc-pre-stop"] || ""];
  const headers = {};
  let body;
  captured = [];
  try {
    const fn = load(spec);
    body = bodyOf(await call(fn, kind === "handler" ? [event, ctx] : [ctx]));
  } catch (err) {
    console.error(err instanceof Error ? err.stack : err);
    headers["x-fc-error-type"] = kind === "handler" ? "UnhandledInvocationError"
      : kind === "initializer" ? "InitializerError" : "PreStopError";
    body = errorBody(err);
  } finally {
    const tail = Buffer.concat(captured);
    captured = null;
    if (tail.length) headers["x-fc-log-result"] = tail.subarray(-LOG_TAIL_BYTES).toString("base64");
  }
  return { headers, body };
}

if (assigned) process.chdir(CODE_DIR); // a stem cell changes directory once its function's code is mounted

// The function's environment, once: the cell becomes that function's instance for good.
function assign(req, body) {
  const token = Buffer.from(String(req.headers["x-fc-cell-token"] || ""));
  const expected = Buffer.from(STEM_CELL_TOKEN || "");
  if (assigned || !STEM_CELL_TOKEN || token.length !== expected.length || !crypto.timingSafeEqual(token, expected)) {
    return [409, "this runtime is not an unassigned stem cell"];
  }
  assigned = true;
  const environment = JSON.parse(body.toString()).environment;
  for (const key of Object.keys(process.env)) delete process.env[key]; // the cell's own variables go, its token too
  Object.assign(process.env, environment);
  // The module search paths again from the function's NODE_PATH (Node reads it once, at its start; the layers'
  // folders did not exist then, and a function may set its own NODE_PATH).
  require("module")._initPaths();
  process.chdir(environment.FC_FUNC_CODE_PATH || CODE_DIR); // the mounted code, not the folder it started in
  return [200, "assigned"];
}
// A promise the handler forgot to await must not take the instance down: log it, as FC's runtime does.
process.on("unhandledRejection", (err) => console.error("unhandled rejection:", err));

const server = http.createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(200, { "content-length": 2 });
    res.end("ok");
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.url.startsWith("/assign") || !assigned) {
      const [status, text] = req.url.startsWith("/assign") ? assign(req, Buffer.concat(chunks))
        : [503, "stem cell: no function assigned yet"];
      res.writeHead(status, { "content-length": Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    serve(req, Buffer.concat(chunks)).then(({ headers, body }) => {
      res.writeHead(200, { ...headers, "content-length": body.length });
      res.end(body);
    });
  });
});
server.keepAliveTimeout = 0; // the agent keeps its connection for the instance's life
server.listen(PORT, "0.0.0.0", () => {
  if (assigned) return;
  // A stem cell runs its own serving code once before it is frozen: V8 compiles a function the first time it runs,
  // and a function's first request would otherwise pay that under its own CPU limit. Nothing of /code is touched.
  bodyOf(JSON.parse(JSON.stringify({ warm: context("warm-up").function.name })));
  call(() => "ok", []).then(() => errorBody(new Error("warm-up")));
  const probe = http.request({ host: "127.0.0.1", port: PORT, method: "POST", path: "/warm-up",
    headers: { "content-length": 2 } }, (res) => res.resume());
  probe.on("error", () => {});
  probe.end("{}");
});
