// Request signers written from the providers' documentation with Node's crypto, independent
// of the Rust verifiers they test. signers.test.mjs checks them against the vectors in tests/fixtures.
import { createHmac } from "node:crypto";

/** X-Twilio-Signature: base64 HMAC-SHA1 of URL + each param's name and value, sorted by name. */
export function twilioSignature(authToken, url, params) {
  const pairs = [...new URLSearchParams(params)].sort(([a, av], [b, bv]) =>
    a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0,
  );
  const data = url + pairs.map(([k, v]) => k + v).join("");
  return createHmac("sha1", authToken).update(data, "utf8").digest("base64");
}

/** Standard Webhooks headers for `body` signed with a `whsec_` secret. */
export function standardHeaders(secret, id, body, timestampSeconds = Math.floor(Date.now() / 1000)) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const sig = createHmac("sha256", key).update(`${id}.${timestampSeconds}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(timestampSeconds), "webhook-signature": `v1,${sig}` };
}

/** x-retell-signature: v=<ms>,d=<hex HMAC-SHA256(key, body + ms)>. */
export function retellSignature(apiKey, body, ms = Date.now()) {
  const d = createHmac("sha256", apiKey).update(body + String(ms)).digest("hex");
  return `v=${ms},d=${d}`;
}
