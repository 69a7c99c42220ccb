// The test signers agree with the providers' own SDKs (the vectors in tests/fixtures), so the end-to-end
// webhook tests sign requests the way real providers do.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../scripts/runtime.mjs";
import { retellSignature, standardHeaders, twilioSignature } from "./support/signers.mjs";

const vectors = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/webhook-signatures.json"), "utf8"));

test("the Twilio signer reproduces the SDK's signatures", () => {
  const d = vectors.twilio_docs_example;
  assert.equal(twilioSignature(d.auth_token, d.url, d.params), d.signature);
  for (const name of ["twilio_status_callback", "twilio_recording_callback"]) {
    const v = vectors[name];
    assert.equal(twilioSignature(v.auth_token, v.url, v.raw_body), v["X-Twilio-Signature"], name);
  }
});

test("the Standard Webhooks signer reproduces the SDK's signature", () => {
  const v = vectors.standard_webhooks;
  const h = standardHeaders(v.secret, v["webhook-id"], v.raw_body, Number(v["webhook-timestamp"]));
  assert.equal(h["webhook-signature"], v["webhook-signature"]);
});

test("the Retell signer reproduces the SDK's signature", () => {
  const v = vectors.retell;
  const ms = Number(v["x-retell-signature"].match(/v=(\d+)/)[1]);
  assert.equal(retellSignature(v.api_key, v.raw_body, ms), v["x-retell-signature"]);
});
