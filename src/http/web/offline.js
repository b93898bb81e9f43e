// sealcast offline viewing of a protected recording (docs/protection.md,
// "Offline licenses"). "Save for offline" stores, in this browser profile's
// IndexedDB, the recording's playlist, its ciphertext segments exactly as
// served, and an offline license: every data key sealed by the server to a
// persistent DEVICE key pair. That pair is made here by WebCrypto with
// extractable = false and kept as CryptoKey objects (structured-cloneable,
// W3C WebCrypto 14 / HTML structured serialization), so its private key can
// be used by this profile but never exported or copied elsewhere. Playing the
// saved copy needs no network: each data key is unwrapped from the license
// into a non-extractable AES-CBC CryptoKey and hls.js reads the playlist and
// segments from IndexedDB through a loader of ours. Past the license's expiry
// (bound into every key's HKDF info and AES-GCM AAD, so it cannot be edited)
// the page refuses and deletes the saved copy.
(function () {
  'use strict';

  const main = document.getElementById('watch');
  const box = document.getElementById('offline');
  if (!main || !box || !main.dataset.offline || !window.SealcastProtected || !window.indexedDB) {
    return;
  }
  const subtle = window.crypto.subtle;
  const util = window.SealcastProtected.util;
  const OFFLINE_LABEL = new TextEncoder().encode('sealcast-offline-license-v1');
  const MAX_KEYS = 64;
  const DB_NAME = 'sealcast-offline';
  const stream = main.dataset.stream;
  const recording = main.dataset.recording;
  const copyId = stream + '/' + recording;
  const statusBox = document.getElementById('offline-status');
  const video = document.getElementById('video');

  const TEXT = {
    expired: 'This offline copy has expired (its license ended at {date}) and was deleted. ' +
      'Connect and save the recording again to keep watching.',
    otherProfile: 'This saved copy cannot be played here: its keys are sealed to the browser profile ' +
      'that saved it, and this profile cannot open them.',
    none: 'No copy of this recording is saved in this browser.',
  };

  // For people debugging and for the browser test.
  const state = (window.sealcastOffline = { status: 'idle', message: '', segments: 0, decrypted: 0, expires: null });
  window.__sealcastKeys = window.__sealcastKeys || [];

  function say(key, text) {
    state.status = key;
    state.message = text;
    statusBox.textContent = text;
  }

  // --- IndexedDB ------------------------------------------------------------

  function request(r) {
    return new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }

  let dbPromise = null;
  function db() {
    if (!dbPromise) {
      const open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = () => {
        // device: the key pair; copies: playlist + licenses; segments: ciphertext.
        for (const name of ['device', 'copies', 'segments']) {
          open.result.createObjectStore(name);
        }
      };
      dbPromise = request(open);
    }
    return dbPromise;
  }

  async function tx(stores, mode, work) {
    const d = await db();
    const t = d.transaction(stores, mode);
    const done = new Promise((resolve, reject) => {
      t.oncomplete = resolve;
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
    const result = await work((name) => t.objectStore(name));
    await done;
    return result;
  }

  const get = (store, key) => tx([store], 'readonly', (s) => request(s(store).get(key)));
  const put = (store, key, value) => tx([store], 'readwrite', (s) => request(s(store).put(value, key)));

  // The profile's device key pair, made once: the private key non-extractable.
  async function deviceKey() {
    const kept = await get('device', 'device');
    if (kept) {
      return kept;
    }
    const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveKey']);
    const device = { privateKey: pair.privateKey, publicKey: pair.publicKey };
    await put('device', 'device', device);
    return device;
  }

  async function deleteCopy() {
    const copy = await get('copies', copyId);
    await tx(['copies', 'segments'], 'readwrite', (s) => {
      if (copy) {
        for (let i = 0; i < copy.segments.length; i++) {
          s('segments').delete(copyId + '/' + i);
        }
      }
      return request(s('copies').delete(copyId));
    });
    return !!copy;
  }

  // --- saving ---------------------------------------------------------------

  function recordingUrl() {
    const url = new URL(main.dataset.playlist, location.href);
    url.searchParams.set('token', new URLSearchParams(location.search).get('token') || '');
    return url.href;
  }

  async function fetchOk(url, init) {
    const response = await fetch(url, Object.assign({ cache: 'no-store', credentials: 'omit' }, init));
    if (!response.ok) {
      const error = new Error('the server answered ' + response.status);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  async function save() {
    say('saving', 'Saving for offline…');
    const device = await deviceKey();
    const playlistUrl = recordingUrl();
    const text = await (await fetchOk(playlistUrl)).text();
    if (text.indexOf('#EXT-X-ENDLIST') < 0) {
      throw new Error('the recording is still in progress; save it once it has ended');
    }
    const perSegment = new Map();
    const stripped = util.stripKeys(text, playlistUrl, perSegment);
    const publicRaw = await subtle.exportKey('raw', device.publicKey);
    const licenses = [];
    for (let at = 0; at < stripped.refs.length; at += MAX_KEYS) {
      const response = await fetchOk(new URL(main.dataset.license, location.href).href, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Authorization: 'Bearer ' + new URLSearchParams(location.search).get('token'),
        },
        body: JSON.stringify({
          public_key: util.toB64url(publicRaw),
          keys: stripped.refs.slice(at, at + MAX_KEYS),
          offline: true,
        }),
      });
      licenses.push(await response.json());
    }
    const segments = [...perSegment.entries()].map(([url, info]) => ({ url: url, keyId: info.keyId, iv: info.iv }));
    for (let i = 0; i < segments.length; i++) {
      const body = await (await fetchOk(segments[i].url)).arrayBuffer();
      await put('segments', copyId + '/' + i, body);
      say('saving', 'Saving for offline… ' + (i + 1) + ' of ' + segments.length + ' segments');
    }
    const expires = Math.min(...licenses.map((l) => l.expires_unix_secs));
    await put('copies', copyId, {
      stream: stream,
      recording: recording,
      playlist: stripped.text,
      licenses: licenses,
      segments: segments.map((s) => ({ url: s.url, keyId: s.keyId, iv: s.iv })),
      expires: expires,
      savedAt: Date.now(),
    });
    state.segments = segments.length;
    state.expires = expires;
    say('saved', 'Saved for offline: ' + segments.length + ' segments, playable until ' + when(expires) + '.');
  }

  function when(unixSecs) {
    return new Date(unixSecs * 1000).toLocaleString();
  }

  // --- playing --------------------------------------------------------------

  // Every key of the saved licenses as a non-extractable AES-CBC CryptoKey.
  async function openLicenses(copy, device) {
    const keys = new Map();
    for (const license of copy.licenses) {
      const server = await subtle.importKey(
        'raw',
        util.fromB64url(license.server_public_key),
        { name: 'ECDH', namedCurve: 'P-256' },
        false,
        []
      );
      const base = await subtle.deriveKey({ name: 'ECDH', public: server }, device.privateKey, { name: 'HKDF' }, false, [
        'deriveKey',
      ]);
      for (const sealed of license.keys) {
        const info = util.binding(copy.stream, sealed.key_id, license.expires_unix_secs, OFFLINE_LABEL);
        const wrapping = await subtle.deriveKey(
          { name: 'HKDF', hash: 'SHA-256', salt: util.fromB64url(license.salt), info: info },
          base,
          { name: 'AES-GCM', length: 256 },
          false,
          ['unwrapKey']
        );
        const key = await subtle.unwrapKey(
          'raw',
          util.fromB64url(sealed.ciphertext),
          wrapping,
          { name: 'AES-GCM', iv: util.fromB64url(sealed.iv), additionalData: info },
          { name: 'AES-CBC' },
          false,
          ['decrypt']
        );
        window.__sealcastKeys.push(key);
        keys.set(sealed.key_id, key);
      }
    }
    return keys;
  }

  function loadStats() {
    const t = performance.now();
    return {
      aborted: false,
      loaded: 0,
      retry: 0,
      total: 0,
      chunkCount: 0,
      bwEstimate: 0,
      loading: { start: t, first: 0, end: 0 },
      parsing: { start: 0, end: 0 },
      buffering: { start: 0, first: 0, end: 0 },
    };
  }

  // An hls.js loader that reads the saved copy instead of the network:
  // `offline:` URLs `…/index.m3u8` and `…/seg-{i}.ts`.
  function storeLoader(copy, keys) {
    return class StoreLoader {
      constructor() {
        this.stats = loadStats();
        this.context = null;
      }
      destroy() {}
      abort() {
        this.stats.aborted = true;
      }
      load(context, config, callbacks) {
        this.context = context;
        const stats = this.stats;
        this.read(context.url).then(
          (data) => {
            stats.loading.first = stats.loading.end = performance.now();
            stats.loaded = stats.total = data.byteLength || data.length;
            callbacks.onSuccess({ url: context.url, data: data }, stats, context, null);
          },
          (error) => callbacks.onError({ code: 0, text: String(error) }, context, null, stats)
        );
      }
      async read(url) {
        if (url.endsWith('index.m3u8')) {
          let i = 0;
          return copy.playlist
            .split('\n')
            .map((line) => (line && !line.startsWith('#') ? 'seg-' + i++ + '.ts' : line))
            .join('\n');
        }
        const match = /seg-(\d+)\.ts$/.exec(url);
        const index = match ? Number(match[1]) : -1;
        const segment = copy.segments[index];
        const body = segment && (await get('segments', copyId + '/' + index));
        if (!body) {
          throw new Error('segment ' + index + ' is not saved');
        }
        const plain = await subtle.decrypt({ name: 'AES-CBC', iv: segment.iv }, keys.get(segment.keyId), body);
        state.decrypted += 1;
        return plain;
      }
    };
  }

  let hls = null;

  async function play() {
    const copy = await get('copies', copyId);
    if (!copy) {
      say('none', TEXT.none);
      return;
    }
    state.expires = copy.expires;
    // The expiry in the license is authenticated; this check only spares the
    // viewer a failed unwrap, and keeps nothing past it.
    if (Date.now() >= copy.expires * 1000) {
      await deleteCopy();
      say('expired', TEXT.expired.replace('{date}', when(copy.expires)));
      return;
    }
    const device = await get('device', 'device');
    let keys;
    try {
      if (!device) {
        throw new Error('no device key');
      }
      keys = await openLicenses(copy, device);
    } catch (e) {
      say('refused', TEXT.otherProfile);
      return;
    }
    if (window.sealcastPlayer && window.sealcastPlayer.stop) {
      window.sealcastPlayer.stop();
    }
    if (hls) {
      hls.destroy();
    }
    const Hls = window.Hls;
    hls = new Hls({ loader: storeLoader(copy, keys), enableWorker: true });
    hls.on(Hls.Events.ERROR, (event, data) => {
      if (data.fatal) {
        say('error', 'The saved copy could not be played (' + data.details + ').');
      }
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      video.play().catch(() => {});
    });
    state.segments = copy.segments.length;
    say('playing', 'Playing the saved copy (offline), until ' + when(copy.expires) + '.');
    hls.loadSource(new URL('offline/' + copyId + '/index.m3u8', location.origin + '/').href);
    hls.attachMedia(video);
  }

  function guarded(action) {
    return () =>
      action().catch((e) => {
        say('error', 'Offline: ' + (e && e.message ? e.message : e));
      });
  }

  document.getElementById('offline-save').addEventListener('click', guarded(save));
  document.getElementById('offline-play').addEventListener('click', guarded(play));
  document.getElementById('offline-delete').addEventListener(
    'click',
    guarded(async () => {
      say('deleted', (await deleteCopy()) ? 'The saved copy was deleted.' : TEXT.none);
    })
  );
  box.hidden = false;
  get('copies', copyId).then(
    (copy) => {
      if (copy && state.status === 'idle') {
        say('saved', 'A copy is saved in this browser, playable until ' + when(copy.expires) + '.');
      }
    },
    () => {}
  );

  // For the browser test: the profile's device key (made if missing).
  window.SealcastOffline = { deviceKey: deviceKey, db: db };
})();
