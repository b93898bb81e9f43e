// Drives headless Chromium (playwright-core) through "Save for offline" on
// the watch page of a protected recording and prints one JSON object on
// stdout; tests/it/offline.rs judges it. This script asserts nothing itself.
//
// Usage: node offline.mjs '<json config>'
//   config: { base, chromium, outDir, stream, recording, token, playSecs }
//
// 1. Profile A: save the recording (every response body recorded through
//    the DevTools protocol into outDir/bodies/), then dump what IndexedDB
//    holds into outDir/idb/ and try to export the device private key.
// 2. Profile A offline (context.setOffline): play the saved copy for
//    playSecs; count the responses that still arrived (none should); then a
//    heap snapshot (HeapProfiler.takeHeapSnapshot) to outDir/heap.heapsnapshot.
// 3. Profile A with the page's clock moved past the license's expiry
//    (page.clock.setFixedTime): play again, read the refusal.
// 4. Profile B (a fresh context: its own IndexedDB): the saved copy and
//    license from A written into its IndexedDB, offline: play, read the
//    refusal.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { AUTOPLAY_FLAGS, guard, waitFor, recordBodies } from './common.mjs';

const config = JSON.parse(process.argv[2]);

const timer = guard('offline.mjs', 280_000);

const watchUrl = `${config.base}/watch/${config.stream}?recording=${config.recording}&token=${config.token}`;

// Records every response body through CDP into `dir`.
// Everything in the page's IndexedDB `sealcast-offline` except the device
// key (which cannot be serialized): copies as JSON (byte arrays as plain
// number arrays), segments as base64.
function dumpStore() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('sealcast-offline');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const t = db.transaction(['copies', 'segments'], 'readonly');
      const out = { copies: [], segments: [] };
      const plain = (v) =>
        JSON.parse(JSON.stringify(v, (k, x) => (x instanceof Uint8Array ? Array.from(x) : x)));
      const b64 = (buf) => {
        let raw = '';
        const bytes = new Uint8Array(buf);
        for (let i = 0; i < bytes.length; i += 0x8000) {
          raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        }
        return btoa(raw);
      };
      t.objectStore('copies').openCursor().onsuccess = (e) => {
        const c = e.target.result;
        if (c) {
          out.copies.push({ key: c.key, value: plain(c.value) });
          c.continue();
        }
      };
      t.objectStore('segments').openCursor().onsuccess = (e) => {
        const c = e.target.result;
        if (c) {
          out.segments.push({ key: c.key, base64: b64(c.value) });
          c.continue();
        }
      };
      t.oncomplete = () => resolve(out);
      t.onerror = () => reject(t.error);
    };
  });
}

// Writes a dump from dumpStore into this page's IndexedDB.
function loadStore(dump) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('sealcast-offline');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const t = open.result.transaction(['copies', 'segments'], 'readwrite');
      for (const c of dump.copies) {
        const value = c.value;
        value.segments = value.segments.map((s) => ({ ...s, iv: new Uint8Array(s.iv) }));
        t.objectStore('copies').put(value, c.key);
      }
      for (const s of dump.segments) {
        const raw = atob(s.base64);
        const bytes = new Uint8Array(raw.length);
        for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
        t.objectStore('segments').put(bytes.buffer, s.key);
      }
      t.oncomplete = () => resolve(true);
      t.onerror = () => reject(t.error);
    };
  });
}

async function exportAttempts() {
  const out = [];
  const keys = [...(window.__sealcastKeys || [])];
  const device = await window.SealcastOffline.deviceKey();
  keys.push(device.privateKey);
  for (const key of keys) {
    for (const format of ['raw', 'jwk', 'pkcs8']) {
      try {
        await crypto.subtle.exportKey(format, key);
        out.push({ type: key.type, algorithm: key.algorithm.name, format, result: 'exported' });
      } catch (e) {
        out.push({ type: key.type, algorithm: key.algorithm.name, format, result: e.name });
      }
    }
  }
  return { exports: out, deviceExtractable: device.privateKey.extractable, keys: keys.length };
}

const offlineState = () => ({ ...(window.sealcastOffline || {}) });

async function profileA(browser, report) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const bodies = await recordBodies(cdp, join(config.outDir, 'bodies'));
  const response = await page.goto(watchUrl, { waitUntil: 'load' });
  report.httpStatus = response ? response.status() : null;
  await waitFor(page, () => window.sealcastOffline && window.Hls, null, 30_000);
  await page.click('#offline-save');
  report.saved = await waitFor(page, () => ['saved', 'error'].includes(window.sealcastOffline.status), null, 90_000);
  report.afterSave = await page.evaluate(offlineState);
  const dump = await page.evaluate(dumpStore);
  mkdirSync(join(config.outDir, 'idb'), { recursive: true });
  writeFileSync(join(config.outDir, 'idb', 'copies.json'), JSON.stringify(dump.copies));
  report.idbFiles = [join(config.outDir, 'idb', 'copies.json')];
  dump.segments.forEach((s, i) => {
    const file = join(config.outDir, 'idb', `segment-${i}.bin`);
    writeFileSync(file, Buffer.from(s.base64, 'base64'));
    report.idbFiles.push(file);
  });
  report.idbSegments = dump.segments.length;

  // Offline: nothing reaches the network; the saved copy plays.
  await bodies.done();
  const late = [];
  await context.setOffline(true);
  // Only network URLs: hls.js's worker is a blob: URL, which is local.
  page.on('response', (r) => {
    if (/^https?:/.test(r.url())) late.push({ url: r.url(), status: r.status() });
  });
  const before = await page.evaluate(() => document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames);
  await page.click('#offline-play');
  report.playedOffline = await waitFor(
    page,
    (secs) => document.querySelector('video').currentTime >= secs,
    config.playSecs,
    90_000
  );
  report.offline = await page.evaluate((framesBefore) => {
    const video = document.querySelector('video');
    return {
      ...window.sealcastOffline,
      currentTime: video.currentTime,
      framesSincePlay: video.getVideoPlaybackQuality().totalVideoFrames - framesBefore,
    };
  }, before);
  report.lateResponses = late;
  Object.assign(report, await page.evaluate(exportAttempts));
  // The page's heap while the saved copy plays: the test searches it for keys.
  const chunks = [];
  cdp.on('HeapProfiler.addHeapSnapshotChunk', (e) => chunks.push(e.chunk));
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  report.heapFile = join(config.outDir, 'heap.heapsnapshot');
  writeFileSync(report.heapFile, chunks.join(''));
  report.bodies = bodies.saved;
  report.bodyFailures = bodies.failures;

  // Past the expiry, by the page's clock.
  await page.clock.setFixedTime((report.afterSave.expires + 1) * 1000);
  await page.click('#offline-play');
  await waitFor(page, () => window.sealcastOffline.status === 'expired', null, 20_000);
  report.expired = await page.evaluate(offlineState);
  report.expiredText = await page.textContent('#offline-status');
  report.afterExpiry = await page.evaluate(dumpStore).then((d) => ({ copies: d.copies.length, segments: d.segments.length }));
  await context.close();
  return dump;
}

async function profileB(browser, dump, report) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(watchUrl, { waitUntil: 'load' });
  await waitFor(page, () => window.SealcastOffline && window.Hls, null, 30_000);
  // Not the online player: only the saved copy plays here.
  await page.evaluate(() => window.sealcastPlayer.stop());
  // Its own device key, so the refusal is the cryptography's, not a lookup's.
  await page.evaluate(() => window.SealcastOffline.deviceKey().then(() => true));
  await page.evaluate(loadStore, dump);
  await context.setOffline(true);
  await page.click('#offline-play');
  await waitFor(page, () => ['refused', 'error', 'playing'].includes(window.sealcastOffline.status), null, 30_000);
  report.otherProfile = await page.evaluate(() => ({
    ...window.sealcastOffline,
    currentTime: document.querySelector('video').currentTime,
  }));
  report.otherProfileText = await page.textContent('#offline-status');
  await context.close();
}

const browser = await chromium.launch({ executablePath: config.chromium, headless: true, args: AUTOPLAY_FLAGS });
const report = {};
try {
  const dump = await profileA(browser, report);
  await profileB(browser, dump, report);
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
  clearTimeout(timer);
}
process.stdout.write(JSON.stringify(report) + '\n');
