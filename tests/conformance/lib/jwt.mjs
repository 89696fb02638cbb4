// Tokens for the auth tests, made here with node:crypto the way an identity provider makes
// them: HS256 with a shared secret, RS256 and ES256 with key pairs generated at test time (the
// server gets the public half as a PEM file), and the malformed kinds an attacker sends.

import crypto from 'node:crypto';
import { writeFileSync } from 'node:fs';

const b64 = (b) => Buffer.from(b).toString('base64url');
const enc = (o) => b64(typeof o === 'string' ? o : JSON.stringify(o));

/** Seconds since the epoch. */
export const now = () => Math.floor(Date.now() / 1000);

/** An HS256 token: header defaults to {alg, typ}; `extra` is merged into it. */
export function hs256(secret, payload, extra = {}) {
  const head = enc({ alg: 'HS256', typ: 'JWT', ...extra });
  const body = enc(payload);
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64(sig)}`;
}

/** A key pair: kind 'rsa' (2048 bits, RS256) or 'ec' (P-256, ES256); pem = the public key. */
export function keyPair(kind) {
  const { publicKey, privateKey } =
    kind === 'rsa'
      ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kind, publicKey, privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }) };
}

/** Writes the public half to path; returns path. */
export function writePem(pair, path) {
  writeFileSync(path, pair.pem);
  return path;
}

/** An RS256 / ES256 token signed with the pair's private key (ES256: the JWS R||S form). */
export function signed(pair, payload, extra = {}) {
  const alg = pair.kind === 'rsa' ? 'RS256' : 'ES256';
  const head = enc({ alg, typ: 'JWT', ...extra });
  const body = enc(payload);
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), {
    key: pair.privateKey,
    ...(pair.kind === 'ec' ? { dsaEncoding: 'ieee-p1363' } : {}),
  });
  return `${head}.${body}.${b64(sig)}`;
}

/** `alg: none`, with an empty signature part. */
export function unsigned(payload) {
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(payload)}.`;
}

/** Claims with the hubstream permissions; exp an hour ahead unless given. */
export function claims(sub, perms = {}, more = {}) {
  return { sub, exp: now() + 3600, hubstream: perms, ...more };
}
