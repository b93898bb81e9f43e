// Drives Debian's headless Chromium (playwright-core) through sealcast's web
// pages and prints what it measured as one JSON object on stdout. The Rust
// test tests/it/browser.rs starts the server and the encoder, runs this, and
// judges the numbers; this script asserts nothing itself.
//
// Usage: node watch.mjs '<json config>'
//   config: { base, stream, idleStream, tokens: { valid, expired, wrongStream,
//             shortLived, idle }, playSecs, outDir, userDataDir, chromium,
//             scenarios? }
//   scenarios: the report keys to run (e.g. ["play"]); all of them when absent.
//   Only the tokens the chosen scenarios use need to be given.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { FLAGS, guard, waitFor, sleep } from './common.mjs';
import { PNG } from 'pngjs';

const config = JSON.parse(process.argv[2]);

// A hard stop, so a hung browser never hangs the test run.
const timer = guard('watch.mjs', 100_000);

const PHONE = { width: 390, height: 844 };

// Luma variance of the middle half of a PNG (away from player controls).
function lumaVariance(png) {
  const image = PNG.sync.read(png);
  const x0 = Math.floor(image.width / 4);
  const x1 = Math.floor((image.width * 3) / 4);
  const y0 = Math.floor(image.height / 4);
  const y1 = Math.floor((image.height * 3) / 4);
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * image.width + x) * 4;
      const luma = 0.2126 * image.data[i] + 0.7152 * image.data[i + 1] + 0.0722 * image.data[i + 2];
      n += 1;
      sum += luma;
      sumSq += luma * luma;
    }
  }
  const mean = sum / n;
  return { variance: sumSq / n - mean * mean, mean, width: image.width, height: image.height };
}

// Opens a page that records requests to playlists and keys, console errors
// and Content-Security-Policy violations.
async function open(context, url, viewport) {
  const page = await context.newPage();
  if (viewport) {
    await page.setViewportSize(viewport);
  }
  const log = { keyRequests: [], keyParams: [], keyStatuses: [], playlistStatuses: [], consoleErrors: [] };
  page.on('request', (request) => {
    const u = new URL(request.url());
    if (u.pathname.startsWith('/keys/')) {
      log.keyRequests.push(u.pathname);
      // Which credential the key URI carried: `token` or a one-time `ticket`.
      log.keyParams.push([...u.searchParams.keys()].sort());
    }
  });
  page.on('response', (response) => {
    const u = new URL(response.url());
    if (u.pathname.startsWith('/keys/')) {
      log.keyStatuses.push(response.status());
    } else if (u.pathname.endsWith('.m3u8')) {
      log.playlistStatuses.push(response.status());
    }
  });
  page.on('console', (message) => {
    if (message.type() === 'error') {
      log.consoleErrors.push(message.text());
    }
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(e.effectiveDirective + ' ' + e.blockedURI);
    });
  });
  const response = await page.goto(url, { waitUntil: 'load' });
  return { page, log, httpStatus: response ? response.status() : null };
}

// What the page shows and what its video element did.
async function observe(page) {
  return page.evaluate(() => {
    const video = document.querySelector('video');
    const error = document.getElementById('error');
    const text = (id) => {
      const el = document.getElementById(id);
      return el ? el.textContent : null;
    };
    const quality = video && video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const player = window.sealcastPlayer || {};
    return {
      currentTime: video ? video.currentTime : null,
      totalVideoFrames: quality ? quality.totalVideoFrames : 0,
      droppedVideoFrames: quality ? quality.droppedVideoFrames : 0,
      videoWidth: video ? video.videoWidth : 0,
      videoHeight: video ? video.videoHeight : 0,
      errorVisible: !!error && !error.hidden && error.offsetHeight > 0,
      errorText: error ? error.textContent : null,
      statusText: text('status'),
      resolutionText: text('resolution'),
      bitrateText: text('bitrate'),
      engineText: text('engine'),
      engine: player.engine || null,
      playerStatus: player.status || null,
      fatalErrors: player.fatalErrors || [],
      cspViolations: window.__cspViolations || [],
      horizontalOverflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
    };
  });
}

function summarize(opened, seen, extra) {
  return {
    httpStatus: opened.httpStatus,
    ...seen,
    keyUris: [...new Set(opened.log.keyRequests)],
    keyParams: opened.log.keyParams,
    keyStatuses: opened.log.keyStatuses,
    playlistStatuses: opened.log.playlistStatuses,
    consoleErrors: opened.log.consoleErrors,
    ...extra,
  };
}

const watchUrl = (token) => `${config.base}/watch/${config.stream}` + (token ? `?token=${token}` : '');

// The stream plays: time advances, frames decode, keys rotate, picture shows.
async function play(context) {
  const opened = await open(context, watchUrl(config.tokens.valid));
  const { page } = opened;
  const started = await waitFor(page, () => document.querySelector('video').currentTime > 0, null, 30_000);
  const first = await observe(page);
  const wallStart = Date.now();
  await sleep(config.playSecs * 1000);
  const last = await observe(page);
  const wallSecs = (Date.now() - wallStart) / 1000;
  const videoPng = await page.locator('video').screenshot();
  writeFileSync(join(config.outDir, 'watch-video.png'), videoPng);
  await page.screenshot({ path: join(config.outDir, 'watch.png') });
  const picture = lumaVariance(videoPng);
  return summarize(opened, last, {
    started,
    wallSecs,
    advanceSecs: last.currentTime - first.currentTime,
    pictureVariance: picture.variance,
    pictureMean: picture.mean,
    screenshot: join(config.outDir, 'watch-video.png'),
  });
}

// A page that must refuse: nothing plays, the error text shows.
async function refused(context, name, token) {
  const opened = await open(context, watchUrl(token), PHONE);
  const { page } = opened;
  await waitFor(page, () => !document.getElementById('error').hidden, null, 10_000);
  // Give a player that wrongly started a few seconds to show it.
  await sleep(4000);
  const seen = await observe(page);
  await page.screenshot({ path: join(config.outDir, `watch-${name}.png`) });
  return summarize(opened, seen, {});
}

// A token that expires while the stream plays: the page stops and says so.
async function expiresWhilePlaying(context) {
  const opened = await open(context, watchUrl(config.tokens.shortLived));
  const { page } = opened;
  const started = await waitFor(page, () => document.querySelector('video').currentTime > 1, null, 30_000);
  const playing = await observe(page);
  const refusedInTime = await waitFor(page, () => !document.getElementById('error').hidden, null, 45_000);
  const seen = await observe(page);
  await page.screenshot({ path: join(config.outDir, 'watch-expired-while-playing.png') });
  return summarize(opened, seen, { started, framesBeforeRefusal: playing.totalVideoFrames, refusedInTime });
}

// A stream nobody publishes: the page waits for it, quietly.
async function waiting(context) {
  const opened = await open(context, `${config.base}/watch/${config.idleStream}?token=${config.tokens.idle}`, PHONE);
  const { page } = opened;
  await waitFor(page, () => window.sealcastPlayer && window.sealcastPlayer.status === 'waiting', null, 15_000);
  // Long enough for a retry or two.
  await sleep(7000);
  const seen = await observe(page);
  await page.screenshot({ path: join(config.outDir, 'watch-waiting.png') });
  return summarize(opened, seen, {});
}

// The operator page, at phone width.
async function operator(context) {
  const opened = await open(context, `${config.base}/`, PHONE);
  const { page } = opened;
  await page.screenshot({ path: join(config.outDir, 'operator.png'), fullPage: true });
  const seen = await page.evaluate(() => ({
    text: document.body.innerText,
    watchLinks: [...document.querySelectorAll('a.button')].map((a) => a.getAttribute('href')),
    horizontalOverflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
    cspViolations: window.__cspViolations || [],
  }));
  return { httpStatus: opened.httpStatus, ...seen };
}

const context = await chromium.launchPersistentContext(config.userDataDir, {
  executablePath: config.chromium,
  headless: true,
  args: FLAGS,
  viewport: { width: 1280, height: 800 },
});
// Every scenario by its report key; they run at the same time.
const SCENARIOS = {
  play: () => play(context),
  noToken: () => refused(context, 'no-token', null),
  expired: () => refused(context, 'expired', config.tokens.expired),
  wrongStream: () => refused(context, 'wrong-stream', config.tokens.wrongStream),
  expiresWhilePlaying: () => expiresWhilePlaying(context),
  operator: () => operator(context),
  waiting: () => waiting(context),
};
const report = {};
try {
  const names = config.scenarios || Object.keys(SCENARIOS);
  const unknown = names.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0) {
    throw new Error(`unknown scenarios: ${unknown.join(', ')}`);
  }
  const results = await Promise.all(names.map((name) => SCENARIOS[name]()));
  names.forEach((name, i) => {
    report[name] = results[i];
  });
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
  clearTimeout(timer);
}
process.stdout.write(JSON.stringify(report) + '\n');
