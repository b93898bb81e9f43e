// What the browser scripts share: Chromium's flags, a hard stop, polling a
// page, and recording response bodies through the DevTools protocol. Each
// script prints one JSON object on stdout for its Rust test to judge.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Headless Chromium with nothing of its own on the network: no route to any
// CDN (every host name but the test server's fails), no QUIC, no updates.
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

// FLAGS, and video that starts without a user gesture.
export const AUTOPLAY_FLAGS = [...FLAGS, '--autoplay-policy=no-user-gesture-required'];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

// A hard stop after `ms`, so a hung browser never hangs the test run; the
// returned timer is cleared when the script ends in time.
export function guard(script, ms) {
  return setTimeout(() => {
    print({ error: `${script} timed out` });
    process.exit(2);
  }, ms);
}

// Whether `predicate(arg)` became true in the page within `timeoutMs`.
export async function waitFor(page, predicate, arg, timeoutMs) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 200 });
    return true;
  } catch (e) {
    return false;
  }
}

// Records every response body of a CDP session (Network.getResponseBody at
// loadingFinished) into `dir` as NNNN.bin. `stop()` ends the recording and
// resolves once the bodies already asked for are written (later responses
// are not read: the page is closed right after, and reading them would race
// the close); `done()` waits for them and records on.
export async function recordBodies(cdp, dir) {
  mkdirSync(dir, { recursive: true });
  const urls = new Map();
  const saved = [];
  const failures = [];
  const reads = [];
  let stopped = false;
  cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, { url: e.response.url, status: e.response.status }));
  cdp.on('Network.loadingFinished', (e) => {
    if (stopped) {
      return;
    }
    reads.push(
      cdp.send('Network.getResponseBody', { requestId: e.requestId }).then(
        (body) => {
          const bytes = Buffer.from(body.body, body.base64Encoded ? 'base64' : 'utf8');
          const file = join(dir, String(saved.length).padStart(4, '0') + '.bin');
          saved.push({ file, ...(urls.get(e.requestId) || {}), bytes: bytes.length });
          writeFileSync(file, bytes);
        },
        (error) => failures.push({ ...(urls.get(e.requestId) || {}), error: String(error) })
      )
    );
  });
  await cdp.send('Network.enable', { maxTotalBufferSize: 200_000_000, maxResourceBufferSize: 20_000_000 });
  const stop = () => {
    stopped = true;
    return Promise.all(reads);
  };
  // Resolves once the bodies asked for so far are written; recording goes on.
  const done = () => Promise.all(reads);
  return { saved, failures, stop, done };
}
