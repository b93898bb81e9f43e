// Plays a recording (a VOD playlist) from start to end with hls.js in
// Debian's headless Chromium (playwright-core) and prints what it measured as
// one JSON object on stdout. tests/it/recordings.rs makes the recording,
// runs this and judges the numbers; this script asserts nothing itself.
//
// Usage: node recording.mjs '<json config>'
//   config: { base, playlist (path with ?token=…), hlsjs (path), chromium,
//             userDataDir, outDir, rate }

import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { AUTOPLAY_FLAGS, guard } from './common.mjs';

const config = JSON.parse(process.argv[2]);

const timer = guard('recording.mjs', 110_000);

// A page of the server's origin (answered by playwright, not the server),
// so the playlist, segments and keys are same-origin requests.
const PAGE = `<!doctype html><meta charset="utf-8"><title>recording</title>
<video id="v" muted playsinline></video>
<script src="${config.hlsjs}"></script>
<script>
  const video = document.getElementById('v');
  const state = { ended: false, errors: [], fatal: [], discontinuities: 0 };
  window.__state = state;
  video.addEventListener('ended', () => { state.ended = true; });
  const hls = new Hls({ enableWorker: true });
  hls.on(Hls.Events.ERROR, (_, data) => {
    state.errors.push(data.details);
    if (data.fatal) state.fatal.push(data.details);
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
    state.levelType = data.details.type;
    state.levelLive = data.details.live;
    state.levelDuration = data.details.totalduration;
  });
  hls.on(Hls.Events.FRAG_CHANGED, (_, data) => {
    state.lastFragSn = data.frag.sn;
    state.lastFragCc = data.frag.cc;
  });
  hls.loadSource(${JSON.stringify(config.playlist)});
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.playbackRate = ${Number(config.rate) || 1};
    video.play().catch((e) => state.errors.push('play: ' + e));
  });
</script>`;

const report = {};
const context = await chromium.launchPersistentContext(config.userDataDir, {
  executablePath: config.chromium,
  headless: true,
  args: AUTOPLAY_FLAGS,
});
try {
  const page = await context.newPage();
  const keyStatuses = [];
  const segmentStatuses = [];
  page.on('response', (response) => {
    const u = new URL(response.url());
    if (u.pathname.startsWith('/keys/')) keyStatuses.push(response.status());
    else if (u.pathname.endsWith('.ts')) segmentStatuses.push(response.status());
  });
  await page.route(`${config.base}/recording-test.html`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: PAGE }),
  );
  await page.goto(`${config.base}/recording-test.html`, { waitUntil: 'load' });
  let ended = true;
  try {
    await page.waitForFunction(() => window.__state && (window.__state.ended || window.__state.fatal.length > 0), null, {
      timeout: 90_000,
      polling: 250,
    });
  } catch (e) {
    ended = false;
  }
  const seen = await page.evaluate(() => {
    const video = document.getElementById('v');
    const quality = video.getVideoPlaybackQuality();
    return {
      ...window.__state,
      currentTime: video.currentTime,
      duration: video.duration,
      totalVideoFrames: quality.totalVideoFrames,
      droppedVideoFrames: quality.droppedVideoFrames,
      videoWidth: video.videoWidth,
    };
  });
  await page.screenshot({ path: join(config.outDir, 'recording-end.png') });
  Object.assign(report, seen, { waited: ended, keyStatuses, segmentStatuses });
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
  clearTimeout(timer);
}
process.stdout.write(JSON.stringify(report) + '\n');
