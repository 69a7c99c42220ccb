// Sign-in with an identity provider's keys, end to end: a local JWKS server (node's http) that
// rotates keys, goes down and answers garbage; tokens signed by node's crypto (RS256, ES256,
// EdDSA), an implementation independent of the worker's; the worker in workerd verifying them
// with the runtime's WebCrypto, sharing the fetched set between isolates through KV.
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { signJwt } from "../scripts/runtime.mjs";
import { insertCall, spawnApp } from "./support/app.mjs";
import { assertMatchesSpec } from "./support/openapi.mjs";

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

function keyPair(kind, kid) {
  const pair =
    kind === "RS256" ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : kind === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" })
    : generateKeyPairSync("ed25519");
  return { alg: kind, kid, privateKey: pair.privateKey, jwk: { ...pair.publicKey.export({ format: "jwk" }), kid, use: "sig" } };
}

/** A JWT signed by node's crypto; `header` overrides alg/kid (for forgeries). */
function jwt(key, claims, header = {}) {
  const h = { alg: key.alg, kid: key.kid, typ: "JWT", ...header };
  const input = `${b64(h)}.${b64({ iat: now(), exp: now() + 600, ...claims })}`;
  const alg = h.alg === "EdDSA" ? null : "sha256";
  const opts = key.alg === "ES256" ? { key: key.privateKey, dsaEncoding: "ieee-p1363" } : key.privateKey;
  return `${input}.${sign(alg, Buffer.from(input), opts).toString("base64url")}`;
}

const rsa = keyPair("RS256", "rsa-1");
const ec = keyPair("ES256", "ec-1");
const ed = keyPair("EdDSA", "ed-1");
const next = keyPair("RS256", "rsa-2"); // published later: the rotation

/** The provider: serves `state.keys` as a JWKS, or misbehaves as `state.mode` says. */
const state = { keys: [rsa, ec, ed], mode: "ok", hits: 0 };
let server;
let jwksUrl;

before(async () => {
  server = createServer((req, res) => {
    state.hits++;
    switch (state.mode) {
      case "down":
        res.writeHead(503).end("upstream unavailable");
        return;
      case "garbage":
        res.writeHead(200, { "content-type": "text/html" }).end("<html>it works</html>");
        return;
      case "huge":
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: state.keys.map((k) => k.jwk), padding: "x".repeat(100_000) }));
        return;
      case "weak": {
        const weak = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [{ ...weak, kid: rsa.kid }] }));
        return;
      }
      default:
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  jwksUrl = `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`;
});

after(() => new Promise((r) => server.close(r)));

function reset(mode = "ok") {
  state.keys = [rsa, ec, ed];
  state.mode = mode;
  state.hits = 0;
}

async function calls(app, token, copy = 0) {
  const res = await app.request("GET", "/api/webhook-calls", { token, copy });
  if (copy === 0) assertMatchesSpec("GET", "/api/webhook-calls", res);
  return res;
}

async function seeded(vars = {}, opts = {}) {
  const app = await spawnApp({ vars: { JWT_JWKS_URL: jwksUrl, ...vars }, ...opts });
  const t = Date.now() - 60_000;
  await insertCall(app, { user: "ada", id: "CAjwksada1", startedAt: t });
  await insertCall(app, { user: "bob", id: "CAjwksbob1", startedAt: t });
  return app;
}

describe("tokens signed with the identity provider's keys", () => {
  let app;
  before(async () => {
    reset();
    app = await seeded();
  });
  after(() => app.close());

  test("RS256, ES256 and EdDSA tokens read the caller's own calls, and HS256 keeps working beside them", async () => {
    for (const key of [rsa, ec, ed]) {
      const res = await calls(app, jwt(key, { sub: "ada" }));
      assert.equal(res.status, 200, `${key.alg}: ${res.text}`);
      assert.deepEqual(res.json.data.map((c) => c.id), ["CAjwksada1"], key.alg);
    }
    const bob = await calls(app, jwt(ed, { sub: "bob" }));
    assert.deepEqual(bob.json.data.map((c) => c.id), ["CAjwksbob1"]);
    assert.equal((await calls(app, app.token("ada"))).status, 200, "HS256 with JWT_SECRET");
    assert.equal(state.hits, 1, "the set was fetched once and served from memory after");
  });

  test("forgeries and confusions are 401: none, HS256 naming a public key's kid, RS256 against the EC key, another key's signature", async () => {
    const claims = { sub: "ada" };
    const [h, p] = jwt(rsa, claims).split(".");
    const cases = [
      ["alg none", `${b64({ alg: "none", kid: rsa.kid })}.${p}.`, /alg is not accepted/],
      ["HS256 with the RSA key's kid, keyed by its modulus", (() => {
        const input = `${b64({ alg: "HS256", kid: rsa.kid })}.${p}`;
        return `${input}.${b64(Buffer.from(rsa.jwk.n))}`;
      })(), /signature does not verify/],
      ["RS256 naming the EC key", jwt(rsa, claims, { kid: ec.kid }), /not the one its key/],
      ["ES256 signed by another P-256 key", jwt(keyPair("ES256", ec.kid), claims), /signature does not verify/],
      ["EdDSA with a tampered payload", `${jwt(ed, claims).split(".")[0]}.${b64({ sub: "bob", exp: now() + 600 })}.${jwt(ed, claims).split(".")[2]}`, /signature does not verify/],
      ["RS256 without a kid", jwt(rsa, claims, { kid: undefined }), /no kid/],
      ["RS256 with the header of another token", `${h}.${b64({ sub: "bob", exp: now() + 600 })}.${jwt(rsa, claims).split(".")[2]}`, /signature does not verify/],
    ];
    for (const [name, token, message] of cases) {
      const res = await calls(app, token);
      assert.equal(res.status, 401, `${name}: ${res.text}`);
      assert.equal(res.json.error.code, "unauthorized", name);
      assert.match(res.json.error.message, message, name);
    }
  });

  test("the claim rules are the HS256 ones: exp, nbf, and an audience refused when none is configured", async () => {
    for (const [claims, message] of [
      [{ sub: "ada", exp: now() - 120 }, /expired/],
      [{ sub: "ada", nbf: now() + 300 }, /not valid yet/],
      [{ sub: "ada", aud: "another-api" }, /audience/],
      [{ sub: "a:b" }, /sub/],
    ]) {
      const res = await calls(app, jwt(ec, claims));
      assert.equal(res.status, 401, JSON.stringify(claims));
      assert.match(res.json.error.message, message);
    }
  });
});

describe("a deployment with only JWT_JWKS_URL", () => {
  test("accepts the provider's tokens and refuses HS256 ones", async () => {
    reset();
    const app = await seeded({ JWT_SECRET: undefined });
    try {
      assert.equal((await calls(app, jwt(rsa, { sub: "ada" }))).status, 200);
      const hs = await calls(app, signJwt("any-secret", { sub: "ada", exp: now() + 600 }));
      assert.equal(hs.status, 401);
      assert.match(hs.json.error.message, /alg is not accepted/);
    } finally {
      await app.close();
    }
  });

  test("with an audience and issuer configured, tokens must carry both", async () => {
    reset();
    const app = await seeded({ JWT_ISSUER: "https://idp.example/", JWT_AUDIENCE: "dashboard-api" });
    try {
      const good = jwt(ed, { sub: "ada", iss: "https://idp.example/", aud: ["dashboard-api", "other"] });
      assert.equal((await calls(app, good)).status, 200);
      assert.equal((await calls(app, jwt(ed, { sub: "ada", iss: "https://idp.example/" }))).status, 401);
      assert.equal((await calls(app, jwt(ed, { sub: "ada", iss: "https://evil.example/", aud: "dashboard-api" }))).status, 401);
    } finally {
      await app.close();
    }
  });
});

describe("the key set across isolates, rotations and outages", () => {
  test("a second isolate takes the set from KV; a rotated key costs one refetch; a flood of unknown kids costs nothing more", async () => {
    reset();
    const app = await seeded({}, { copies: 2 });
    try {
      assert.equal((await calls(app, jwt(rsa, { sub: "ada" }), 0)).status, 200);
      assert.equal(state.hits, 1);
      await new Promise((r) => setTimeout(r, 300)); // the KV write lands after the response
      assert.equal((await calls(app, jwt(ec, { sub: "ada" }), 1)).status, 200, "copy 1 reads the shelved set");
      assert.equal(state.hits, 1, "copy 1 did not ask the provider");

      state.keys = [rsa, ec, ed, next]; // the provider rotates
      const rotated = await calls(app, jwt(next, { sub: "ada" }), 1);
      assert.equal(rotated.status, 200, `${rotated.text} after ${state.hits} provider requests`);
      assert.equal(state.hits, 2, "one refetch for the new kid");

      for (let i = 0; i < 25; i++) {
        const forged = jwt(keyPair("EdDSA", `forged-${i}`), { sub: "ada" });
        for (const copy of [0, 1]) {
          const res = await calls(app, forged, copy);
          assert.equal(res.status, 401);
          assert.match(res.json.error.message, /kid names no key/);
        }
      }
      assert.equal(state.hits, 2, "unknown kids within 30 s of each isolate's last trip cost no request");
    } finally {
      await app.close();
    }
  });

  test("while the provider is down, known keys keep working from KV in a new isolate, and unknown kids get 401", async () => {
    reset();
    const app = await seeded({}, { copies: 2 });
    try {
      assert.equal((await calls(app, jwt(ed, { sub: "ada" }), 0)).status, 200);
      await new Promise((r) => setTimeout(r, 300));
      state.mode = "down";
      for (const key of [rsa, ec, ed]) {
        assert.equal((await calls(app, jwt(key, { sub: "ada" }), 1)).status, 200, key.alg);
      }
      const unknown = await calls(app, jwt(keyPair("RS256", "rsa-unknown"), { sub: "ada" }), 1);
      assert.equal(unknown.status, 401, unknown.text);
      assert.equal(state.hits, 2, "copy 1 tried the provider once for the unknown kid");
    } finally {
      await app.close();
    }
  });

  for (const [mode, what] of [
    ["down", "answers 503"],
    ["garbage", "answers HTML"],
    ["huge", "answers a body over 64 KiB"],
    ["weak", "publishes only a 1024-bit RSA key"],
    ["unreachable", "refuses connections"],
  ]) {
    test(`a provider that ${what} from the start leaves tokens at 401, never a 5xx, and is asked once per 30 s`, async () => {
      reset(mode);
      const url = mode === "unreachable" ? "http://127.0.0.1:9/jwks.json" : jwksUrl;
      const app = await seeded({ JWT_JWKS_URL: url });
      try {
        for (let i = 0; i < 3; i++) {
          const res = await calls(app, jwt(rsa, { sub: "ada" }));
          assert.equal(res.status, 401, `${mode}: ${res.text}`);
          assert.match(res.json.error.message, /kid names no key/);
        }
        assert.equal(state.hits, mode === "unreachable" ? 0 : 1);
        assert.equal((await calls(app, app.token("ada"))).status, 200, "HS256 is untouched");
      } finally {
        await app.close();
      }
    });
  }
});
