// Startover in a real browser: Debian's headless Chromium (playwright-core)
// plays a live stream that has a DVR window with hls.js, seeks back
// `seekBackSecs` from where it joined and keeps playing there. Prints what
// it saw as one JSON object on stdout; tests/it/dvr.rs judges it (this
// script asserts nothing).
//
// Usage: node dvr.mjs '<json config>'
//   config: { base, stream, token, seekBackSecs, playSecs, chromium, userDataDir }
//
// The page is a bare hls.js player on the server's own origin (served by a
// playwright route, so it needs nothing from the server but hls.js itself,
// which sealcast serves at /static/...): the watch page's own controls are
// not what is tested here.

import { chromium } from 'playwright-core';
import { AUTOPLAY_FLAGS, guard, sleep } from './common.mjs';

const config = JSON.parse(process.argv[2]);
const timer = guard('dvr.mjs', 150_000);

const PAGE = `<!doctype html><html><body>
<video id="v" muted playsinline width="640" height="360"></video>
<script src="/static/hls.js@1.7.4/hls.min.js"></script>
<script>
  const video = document.getElementById('v');
  const hls = new Hls({ lowLatencyMode: false });
  // Fragments buffered, with their key URI: which segments were played.
  window.dvr = { frags: [], errors: [] };
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
    const f = data.frag;
    window.dvr.frags.push({
      sn: f.sn,
      start: f.start,
      key: f.decryptdata && f.decryptdata.uri ? new URL(f.decryptdata.uri, location.href).pathname : null,
      at: Date.now(),
    });
  });
  hls.on(Hls.Events.ERROR, (_, data) => window.dvr.errors.push(data.type + ' ' + data.details + (data.fatal ? ' fatal' : '')));
  hls.loadSource(${JSON.stringify(`/${config.stream}/index.m3u8?token=${config.token}`)});
  hls.attachMedia(video);
  video.play().catch(() => {});
  window.hls = hls;
</script></body></html>`;

const context = await chromium.launchPersistentContext(config.userDataDir, {
  executablePath: config.chromium,
  headless: true,
  args: AUTOPLAY_FLAGS,
});
const report = {};
try {
  const page = await context.newPage();
  const keyResponses = [];
  page.on('response', (response) => {
    const u = new URL(response.url());
    if (u.pathname.startsWith('/keys/')) {
      keyResponses.push({ path: u.pathname, status: response.status(), at: Date.now() });
    }
  });
  const pageUrl = `${config.base}/__dvr_test__.html`;
  await page.route(pageUrl, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: PAGE }));
  await page.goto(pageUrl, { waitUntil: 'load' });

  const state = () =>
    page.evaluate(() => {
      const v = document.getElementById('v');
      const q = v.getVideoPlaybackQuality();
      return {
        currentTime: v.currentTime,
        frames: q.totalVideoFrames,
        seekableStart: v.seekable.length ? v.seekable.start(0) : null,
        seekableEnd: v.seekable.length ? v.seekable.end(v.seekable.length - 1) : null,
        paused: v.paused,
        now: Date.now(),
      };
    });
  await page.waitForFunction(() => document.getElementById('v').currentTime > 1, null, { timeout: 40_000, polling: 200 });
  const joined = await state();
  const target = joined.currentTime - config.seekBackSecs;
  await page.evaluate((t) => {
    document.getElementById('v').currentTime = t;
  }, target);
  // Playing again, past the seek target.
  await page.waitForFunction(
    (t) => {
      const v = document.getElementById('v');
      return !v.seeking && v.currentTime > t + 1;
    },
    target,
    { timeout: 40_000, polling: 200 },
  );
  const resumed = await state();
  await sleep(config.playSecs * 1000);
  const played = await state();
  const seen = await page.evaluate(() => window.dvr);
  Object.assign(report, {
    joined,
    target,
    resumed,
    played,
    frags: seen.frags,
    hlsErrors: seen.errors,
    keyResponses,
  });
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
  clearTimeout(timer);
}
process.stdout.write(JSON.stringify(report) + '\n');
