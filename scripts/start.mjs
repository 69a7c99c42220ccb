// `npm start`: migrate the local D1, load demo data on first run, serve the built worker on
// http://127.0.0.1:8787 and print a ready-to-paste request.
import { join } from "node:path";
import { DEMO_USERS, demoStatements, loadStatements } from "./demo-data.mjs";
import { ROOT, applyMigrations, consoleWithDevToken, devToken, devVarsFile, localVars, startWorker } from "./runtime.mjs";

const persistDir = join(ROOT, ".wrangler/state");
const port = Number(process.env.PORT ?? 8787);
const vars = localVars();

console.log(`[start] vars from ${devVarsFile().replace(ROOT + "/", "")}`);
console.log("[start] applying migrations/ to the local D1 (.wrangler/state)");
applyMigrations(persistDir);

const assets = vars.JWT_SECRET
  ? consoleWithDevToken(join(ROOT, ".wrangler/console"), vars.JWT_SECRET, DEMO_USERS[0].id)
  : join(ROOT, "public");
const worker = await startWorker({ persistDir, vars, port, assets });
const { count } = await worker.db.prepare("SELECT COUNT(*) AS count FROM calls").first();
if (count === 0) {
  const statements = demoStatements(Date.now());
  await loadStatements(worker.db, statements);
  console.log(`[start] loaded demo data: ${DEMO_USERS.length} users, ${statements.length} rows`);
} else {
  console.log(`[start] local D1 already holds ${count} calls; demo data left as is`);
}

const user = DEMO_USERS[0].id;
const token = vars.JWT_SECRET ? devToken(vars.JWT_SECRET, user) : "<set JWT_SECRET>";
console.log(`
Serving on ${worker.url}  (Ctrl-C to stop)

Console: ${worker.url}/  (click "Use the local dev token")

Try it (a dev token for ${user}, valid 12 hours):

  curl -s '${worker.url}/api/webhook-calls?limit=5' -H 'Authorization: Bearer ${token}'

  curl -s '${worker.url}/api/intent-analysis?limit=3' -H 'Authorization: Bearer ${token}'

Other demo users: ${DEMO_USERS.slice(1).map((u) => u.id).join(", ")}. Admin token: ADMIN_TOKEN in ${devVarsFile().replace(ROOT + "/", "")}.
`);

const stop = async () => {
  await worker.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
