// Drives headless Chromium (playwright-core) through the watch page of a
// `protection = "web"` stream and prints one JSON object on stdout; the Rust
// test tests/it/protected.rs judges it. This script asserts nothing itself.
//
// Usage: node protected.mjs '<json config>'
//   config: { base, chromium, outDir, mode: "capture" | "startup",
//             capture: { stream, token, playSecs },
//             startup: { runs, streams: [{ label, stream, token }] } }
//
// capture: plays the stream while the DevTools protocol (CDP) records every
//   response body of the page (Network.getResponseBody at loadingFinished),
//   written to outDir/bodies/NNNN.bin; then takes a heap snapshot
//   (HeapProfiler.takeHeapSnapshot) to outDir/heap.heapsnapshot and tries
//   crypto.subtle.exportKey on every CryptoKey the page exposes on
//   window.__sealcastKeys.
// startup: for each stream, `runs` fresh browser contexts: time from
//   navigation start to the first decoded video frame
//   (requestVideoFrameCallback) and the requests the page made before it.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { FLAGS, guard, waitFor, recordBodies, sleep } from './common.mjs';

const config = JSON.parse(process.argv[2]);

const timer = guard('protected.mjs', 280_000);

const watchUrl = (stream, token) => `${config.base}/watch/${stream}?token=${token}`;

// Records every response body through CDP into `dir`.
async function heapSnapshot(cdp, file) {
  const chunks = [];
  cdp.on('HeapProfiler.addHeapSnapshotChunk', (e) => chunks.push(e.chunk));
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  const text = chunks.join('');
  writeFileSync(file, text);
  return text.length;
}

async function capture(browser) {
  const c = config.capture;
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const bodies = await recordBodies(cdp, join(config.outDir, 'bodies'));
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  const response = await page.goto(watchUrl(c.stream, c.token), { waitUntil: 'load' });
  const started = await waitFor(page, () => document.querySelector('video').currentTime > 0, null, 40_000);
  const first = await page.evaluate(() => document.querySelector('video').currentTime);
  await sleep(c.playSecs * 1000);
  const seen = await page.evaluate(async () => {
    const video = document.querySelector('video');
    const quality = video.getVideoPlaybackQuality();
    const keys = window.__sealcastKeys || [];
    const exports = [];
    for (const key of keys) {
      for (const format of ['raw', 'jwk', 'pkcs8']) {
        try {
          await crypto.subtle.exportKey(format, key);
          exports.push({ type: key.type, algorithm: key.algorithm.name, format, result: 'exported' });
        } catch (e) {
          exports.push({ type: key.type, algorithm: key.algorithm.name, format, result: e.name });
        }
      }
    }
    const player = window.sealcastPlayer || {};
    return {
      currentTime: video.currentTime,
      totalVideoFrames: quality.totalVideoFrames,
      engine: player.engine,
      status: player.status,
      fatalErrors: player.fatalErrors || [],
      protection: player.protection || null,
      keysExposed: keys.length,
      extractable: keys.filter((k) => k.extractable).length,
      aesCbcKeys: keys.filter((k) => k.algorithm.name === 'AES-CBC').length,
      exports,
    };
  });
  const heapChars = await heapSnapshot(cdp, join(config.outDir, 'heap.heapsnapshot'));
  await bodies.stop();
  await context.close();
  return {
    httpStatus: response ? response.status() : null,
    started,
    advanceSecs: seen.currentTime - first,
    ...seen,
    heapChars,
    bodies: bodies.saved,
    bodyFailures: bodies.failures,
    keyRequests: requests.filter((p) => p.startsWith('/keys/')).length,
    licenseRequests: requests.filter((p) => p.startsWith('/license/')).length,
  };
}

// One cold start: fresh context (no cache), time to the first frame.
async function startOnce(browser, stream, token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(() => {
    document.addEventListener('DOMContentLoaded', () => {
      const video = document.querySelector('video');
      if (video && video.requestVideoFrameCallback) {
        video.requestVideoFrameCallback(() => {
          window.__firstFrameMs = performance.now();
        });
      }
    });
  });
  await page.goto(watchUrl(stream, token), { waitUntil: 'load' });
  const ok = await waitFor(page, () => typeof window.__firstFrameMs === 'number', null, 30_000);
  const result = await page.evaluate(() => {
    const at = window.__firstFrameMs;
    const entries = performance.getEntriesByType('resource').filter((e) => e.startTime <= at);
    const path = (e) => new URL(e.name).pathname;
    return {
      firstFrameMs: at,
      // The page itself, then every resource started before the first frame.
      requests: 1 + entries.length,
      keyOrLicense: entries.filter((e) => /^\/(keys|license)\//.test(path(e))).length,
      playlists: entries.filter((e) => path(e).endsWith('.m3u8')).length,
      segments: entries.filter((e) => path(e).endsWith('.ts')).length,
    };
  });
  await context.close();
  return { ok, ...result };
}

async function startup(browser) {
  const out = {};
  for (const s of config.startup.streams) {
    out[s.label] = [];
  }
  // Interleaved, so both modes see the same machine load over time.
  for (let i = 0; i < config.startup.runs; i++) {
    for (const s of config.startup.streams) {
      out[s.label].push(await startOnce(browser, s.stream, s.token));
    }
  }
  return out;
}

const browser = await chromium.launch({ executablePath: config.chromium, headless: true, args: FLAGS });
let report = {};
try {
  report = config.mode === 'startup' ? { startup: await startup(browser) } : { capture: await capture(browser) };
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
  clearTimeout(timer);
}
process.stdout.write(JSON.stringify(report) + '\n');
