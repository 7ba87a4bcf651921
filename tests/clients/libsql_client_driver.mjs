// Drives @libsql/client (the TypeScript client) for tests/test_standin_clients.py.
// Reads {"url", "authToken", "ops": [...]} as JSON on stdin, runs the ops in order on
// named clients, prints one JSON array of outcomes: {"ok": true, ...} or
// {"ok": false, "code", "message"}. Our own code: the package itself is installed by the
// test session into a cache directory, never committed.
import { createClient } from "@libsql/client";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const spec = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const clients = new Map();
const txs = new Map();
function client(name) {
  if (!clients.has(name)) {
    clients.set(name, createClient({ url: spec.url, authToken: spec.authToken ?? undefined }));
  }
  return clients.get(name);
}
const plain = (v) => (typeof v === "bigint" ? v.toString() : v instanceof ArrayBuffer ? [...new Uint8Array(v)] : v);
const result = (rs) => ({ ok: true, columns: rs.columns, rows: rs.rows.map((r) => Array.from(r, plain)) });

const out = [];
for (const op of spec.ops) {
  const name = op.client ?? "a";
  try {
    switch (op.kind) {
      case "execute":
        out.push(result(await client(name).execute(op.sql)));
        break;
      case "executeMultiple":
        await client(name).executeMultiple(op.sql);
        out.push({ ok: true });
        break;
      case "batch":
        out.push({ ok: true, results: (await client(name).batch(op.sqls, op.mode ?? "write")).map(result) });
        break;
      case "begin":
        txs.set(name, await client(name).transaction(op.mode ?? "write"));
        out.push({ ok: true });
        break;
      case "txExecute":
        out.push(result(await txs.get(name).execute(op.sql)));
        break;
      case "commit":
        await txs.get(name).commit();
        out.push({ ok: true });
        break;
      case "sleep":
        await new Promise((resolve) => setTimeout(resolve, op.ms));
        out.push({ ok: true });
        break;
      default:
        throw new Error(`unknown op ${op.kind}`);
    }
  } catch (e) {
    out.push({ ok: false, code: e?.code ?? null, message: String(e?.message ?? e) });
  }
}
for (const c of clients.values()) c.close();
process.stdout.write(JSON.stringify(out) + "\n");
