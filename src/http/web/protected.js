// sealcast protected playback (`protection = "web"` streams): the page gets
// data keys only as licenses (POST /license/{app}/{name}, format in
// docs/protection.md) and unwraps each one straight into a non-extractable
// AES-CBC CryptoKey (W3C WebCrypto: generateKey, deriveKey, unwrapKey with
// extractable = false), so no key byte ever exists in page JavaScript. It
// gives hls.js a playlist loader that removes the EXT-X-KEY tags (after
// noting, per segment, the key and IV: RFC 8216 4.3.2.4, a key applies to
// every following segment) and a fragment loader that decrypts each segment
// before hls.js sees it. New key ids in a refreshed playlist are licensed
// before that playlist is handed on, so ahead of their segments.
(function () {
  'use strict';

  const subtle = window.crypto && window.crypto.subtle;
  const LABEL = new TextEncoder().encode('sealcast-license-v1');
  // A playlist's one-time license ticket (when the server hands out tickets).
  const TICKET_TAG = '#EXT-X-SEALCAST-LICENSE-TICKET:';

  function fromB64url(text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '==='.slice((b64.length + 3) % 4));
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out;
  }

  function toB64url(bytes) {
    let raw = '';
    for (const b of new Uint8Array(bytes)) {
      raw += String.fromCharCode(b);
    }
    return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // "sealcast-license-v1" 0 stream 0 key_id 0 expiry (u64 big-endian): the
  // HKDF info and the AES-GCM additional data of one key.
  // `label`: another label (an offline license's); default LABEL.
  function binding(stream, keyId, expires, label) {
    const l = label || LABEL;
    const s = new TextEncoder().encode(stream);
    const k = new TextEncoder().encode(keyId);
    const out = new Uint8Array(l.length + s.length + k.length + 3 + 8);
    let at = 0;
    out.set(l, at);
    at += l.length + 1;
    out.set(s, at);
    at += s.length + 1;
    out.set(k, at);
    at += k.length + 1;
    new DataView(out.buffer).setBigUint64(at, BigInt(expires));
    return out;
  }

  function hexBytes(hex) {
    const clean = hex.replace(/^0x/i, '');
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++) {
      out[i] = parseInt(clean.substr(i * 2, 2), 16);
    }
    return out;
  }

  // The key id and wrapped key of a key URI `.../keys/{app}/{name}/{id}?edk=…`.
  function keyRef(uri, base) {
    const url = new URL(uri, base);
    const at = url.pathname.lastIndexOf('/');
    return { key_id: decodeURIComponent(url.pathname.slice(at + 1)), edk: url.searchParams.get('edk') || '' };
  }

  // The playlist without its key tags, and per segment URL the key and IV;
  // `ticket`: the playlist's license ticket, if it has one.
  function stripKeys(text, base, segments) {
    const out = [];
    const refs = new Map();
    let current = null;
    let ticket = null;
    for (const line of text.split('\n')) {
      if (line.startsWith(TICKET_TAG)) {
        ticket = line.slice(TICKET_TAG.length).trim();
        continue;
      }
      if (line.startsWith('#EXT-X-KEY:')) {
        const method = /METHOD=([A-Z0-9-]+)/.exec(line);
        const uri = /URI="([^"]*)"/.exec(line);
        const iv = /IV=(0[xX][0-9a-fA-F]{32})/.exec(line);
        if (method && method[1] === 'NONE') {
          current = null;
        } else if (uri && iv) {
          const ref = keyRef(uri[1], base);
          refs.set(ref.key_id, ref);
          current = { keyId: ref.key_id, iv: hexBytes(iv[1]) };
        }
        continue;
      }
      if (current && line && !line.startsWith('#')) {
        segments.set(new URL(line.trim(), base).href, current);
      }
      out.push(line);
    }
    return { text: out.join('\n'), refs: [...refs.values()], ticket: ticket };
  }

  // Licenses for one stream: a fresh ECDH key pair per license request.
  function Licenser(licenseUrl, token, stream, debugKeys, stats) {
    const keys = new Map();
    const pending = new Map();

    // With a license ticket (from the playlist), the request carries the
    // ticket instead of the token; each ticket works once.
    async function fetchLicense(refs, ticket) {
      const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveKey']);
      debugKeys.push(pair.privateKey);
      const publicRaw = await subtle.exportKey('raw', pair.publicKey);
      stats.licenses += 1;
      const headers = { 'Content-Type': 'application/json' };
      let url = licenseUrl;
      if (ticket) {
        url += (url.indexOf('?') < 0 ? '?' : '&') + 'ticket=' + encodeURIComponent(ticket);
        stats.ticketLicenses = (stats.ticketLicenses || 0) + 1;
      } else {
        headers.Authorization = 'Bearer ' + token;
      }
      const response = await fetch(url, {
        method: 'POST',
        cache: 'no-store',
        credentials: 'omit',
        headers: headers,
        body: JSON.stringify({ public_key: toB64url(publicRaw), keys: refs }),
      });
      if (!response.ok) {
        const error = new Error('license refused: ' + response.status);
        error.status = response.status;
        throw error;
      }
      const license = await response.json();
      const serverKey = await subtle.importKey(
        'raw',
        fromB64url(license.server_public_key),
        { name: 'ECDH', namedCurve: 'P-256' },
        false,
        []
      );
      const base = await subtle.deriveKey({ name: 'ECDH', public: serverKey }, pair.privateKey, { name: 'HKDF' }, false, [
        'deriveKey',
      ]);
      const salt = fromB64url(license.salt);
      const unwrapped = new Map();
      for (const sealed of license.keys) {
        const info = binding(stream, sealed.key_id, license.expires_unix_secs);
        const wrapping = await subtle.deriveKey(
          { name: 'HKDF', hash: 'SHA-256', salt: salt, info: info },
          base,
          { name: 'AES-GCM', length: 256 },
          false,
          ['unwrapKey']
        );
        const key = await subtle.unwrapKey(
          'raw',
          fromB64url(sealed.ciphertext),
          wrapping,
          { name: 'AES-GCM', iv: fromB64url(sealed.iv), additionalData: info },
          { name: 'AES-CBC' },
          false,
          ['decrypt']
        );
        debugKeys.push(key);
        unwrapped.set(sealed.key_id, key);
      }
      return unwrapped;
    }

    // Licenses every key of `refs` not held or asked for yet, in one request.
    function ensure(refs, ticket) {
      const missing = refs.filter((r) => !keys.has(r.key_id) && !pending.has(r.key_id));
      if (missing.length > 0) {
        const request = fetchLicense(missing, ticket).then(
          (got) => {
            for (const [id, key] of got) {
              keys.set(id, key);
            }
            return got;
          },
          (error) => {
            for (const r of missing) {
              pending.delete(r.key_id);
            }
            throw error;
          }
        );
        for (const r of missing) {
          pending.set(r.key_id, request);
        }
      }
      return Promise.all(refs.map((r) => key(r.key_id)));
    }

    function key(keyId) {
      if (keys.has(keyId)) {
        return Promise.resolve(keys.get(keyId));
      }
      if (pending.has(keyId)) {
        return pending.get(keyId).then((got) => got.get(keyId) || Promise.reject(new Error('key not licensed')));
      }
      return Promise.reject(new Error('key not licensed: ' + keyId));
    }

    return { ensure: ensure, key: key, has: (keyId) => keys.has(keyId) };
  }

  // The hls.js configuration for a protected stream: its two loaders.
  // `onRefused(status)` hears a license refusal.
  function hlsConfig(Hls, options) {
    const segments = new Map();
    // `notReady`: segments whose key was not licensed yet when they arrived
    // (the playlist loader licenses keys first, so this stays 0).
    const stats = { licenses: 0, decrypted: 0, notReady: 0 };
    window.__sealcastKeys = window.__sealcastKeys || [];
    const licenser = Licenser(options.licenseUrl, options.token, options.stream, window.__sealcastKeys, stats);
    const Base = Hls.DefaultConfig.loader;

    class PlaylistLoader extends Base {
      load(context, config, callbacks) {
        const onSuccess = callbacks.onSuccess;
        const wrapped = Object.assign({}, callbacks, {
          onSuccess: (response, loadStats, ctx, details) => {
            if (typeof response.data !== 'string' || response.data.indexOf('#EXTINF') < 0) {
              onSuccess(response, loadStats, ctx, details);
              return;
            }
            const stripped = stripKeys(response.data, response.url || ctx.url, segments);
            licenser.ensure(stripped.refs, stripped.ticket).then(
              () => {
                response.data = stripped.text;
                onSuccess(response, loadStats, ctx, details);
              },
              (error) => {
                options.onRefused(error.status || 0);
                callbacks.onError({ code: error.status || 0, text: String(error) }, ctx, details, loadStats);
              }
            );
          },
        });
        super.load(context, config, wrapped);
      }
    }

    class FragmentLoader extends Base {
      load(context, config, callbacks) {
        const onSuccess = callbacks.onSuccess;
        const wrapped = Object.assign({}, callbacks, {
          onSuccess: (response, loadStats, ctx, details) => {
            const info = segments.get(ctx.url);
            if (!info) {
              onSuccess(response, loadStats, ctx, details);
              return;
            }
            if (!licenser.has(info.keyId)) {
              stats.notReady += 1;
            }
            licenser
              .key(info.keyId)
              .then((key) => subtle.decrypt({ name: 'AES-CBC', iv: info.iv }, key, response.data))
              .then(
                (plain) => {
                  stats.decrypted += 1;
                  response.data = plain;
                  onSuccess(response, loadStats, ctx, details);
                },
                (error) => callbacks.onError({ code: 0, text: 'decrypt: ' + error }, ctx, details, loadStats)
              );
          },
        });
        super.load(context, config, wrapped);
      }
    }

    return { pLoader: PlaylistLoader, fLoader: FragmentLoader, stats: stats };
  }

  window.SealcastProtected = {
    supported: !!subtle,
    hlsConfig: hlsConfig,
    // Shared with offline.js.
    util: { fromB64url: fromB64url, toB64url: toB64url, binding: binding, stripKeys: stripKeys },
  };
})();
