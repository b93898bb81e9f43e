// Plays a watch page in Debian's headless Chromium (playwright-core) for a
// while and prints, every half second, one JSON line of what the video
// element did and which segments the page fetched. tests/it/cluster_demo.rs
// runs it through the cluster's cache and edges while it kills an ingest node,
// and judges the lines; this script asserts nothing itself.
//
// Usage: node cluster.mjs '<json config>'
//   config: { url, seconds, userDataDir, chromium }

import { chromium } from 'playwright-core';
import { FLAGS, guard, print, sleep } from './common.mjs';

const config = JSON.parse(process.argv[2]);
guard('cluster.mjs', (config.seconds + 30) * 1000);

const context = await chromium.launchPersistentContext(config.userDataDir, {
  executablePath: config.chromium,
  headless: true,
  args: FLAGS,
});
const page = await context.newPage();
// Segment file names the page got (200 or 206), in order; and failed answers.
const segments = [];
const failures = [];
page.on('response', (response) => {
  const path = new URL(response.url()).pathname;
  const status = response.status();
  if (path.endsWith('.ts') && status < 300) {
    segments.push(path.split('/').pop());
  } else if (status >= 400) {
    failures.push(`${status} ${path}`);
  }
});
const opened = await page.goto(config.url, { waitUntil: 'load' });
const started = Date.now();
while (Date.now() - started < config.seconds * 1000) {
  const seen = await page.evaluate(() => {
    const video = document.querySelector('video');
    const quality = video && video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const buffered = video && video.buffered.length ? video.buffered.end(video.buffered.length - 1) : 0;
    const player = window.sealcastPlayer || {};
    return {
      currentTime: video ? video.currentTime : 0,
      bufferedEnd: buffered,
      frames: quality ? quality.totalVideoFrames : 0,
      status: player.status || null,
      fatalErrors: player.fatalErrors || [],
    };
  });
  print({ t: Date.now() - started, httpStatus: opened ? opened.status() : null, ...seen, segments, failures });
  await sleep(500);
}
await context.close();
process.exit(0);
