// sealcast watch page: plays one stream with hls.js, or with the browser's
// own HLS player on Apple devices, shows live status, resolution and bitrate,
// and says plainly when playback is refused. Served as it is: no build step,
// no inline script (the page's Content-Security-Policy forbids it).
(function () {
  'use strict';

  const main = document.getElementById('watch');
  const video = document.getElementById('video');
  const errorBox = document.getElementById('error');
  const statusBox = document.getElementById('status');
  const resolutionBox = document.getElementById('resolution');
  const bitrateBox = document.getElementById('bitrate');
  const engineBox = document.getElementById('engine');
  const RETRY_MS = 3000;

  // What the page did, for people debugging and for the browser test.
  const state = (window.sealcastPlayer = {
    engine: null,
    status: 'connecting',
    refused: false,
    fatalErrors: [],
  });

  if (!main || !video || main.dataset.refused) {
    return;
  }

  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  let hls = null;
  let retryTimer = null;
  let mediaRecoveries = 0;
  const fragments = [];

  function setStatus(key, text) {
    state.status = key;
    statusBox.textContent = text;
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.textContent = '';
  }

  // offline.js stops the online player before it plays a saved copy.
  state.stop = function () {
    stopPlayback();
  };

  function stopPlayback() {
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (hls) {
      hls.destroy();
      hls = null;
    }
    video.removeAttribute('src');
    video.load();
  }

  // The token's claims, read without checking them (the server does that):
  // only to tell a viewer whether their link is too old or for another stream.
  function tokenClaims() {
    try {
      const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(payload + '==='.slice((payload.length + 3) % 4)));
    } catch (e) {
      return null;
    }
  }

  function tokenExpiry() {
    const claims = tokenClaims();
    return claims && typeof claims.exp === 'number' ? claims.exp : null;
  }

  // Whether the token's stream claim (`app/name`, `app/*` or `*`) covers
  // this page's stream, `app/name` from /watch/{app}/{name}.
  function tokenCoversThisStream() {
    const claims = tokenClaims();
    if (!claims || typeof claims.stream !== 'string') {
      return true;
    }
    const parts = location.pathname.split('/').filter(Boolean);
    const here = parts.slice(-2).map(decodeURIComponent);
    const pattern = claims.stream.split('/');
    if (claims.stream === '*') {
      return true;
    }
    return pattern.length === 2 && pattern[0] === here[0] && (pattern[1] === '*' || pattern[1] === here[1]);
  }

  function refuse() {
    stopPlayback();
    state.refused = true;
    setStatus('refused', 'Refused');
    let text = main.dataset.refusedText;
    const exp = tokenExpiry();
    if (exp !== null && exp * 1000 <= Date.now()) {
      text += ' This link’s token expired at ' + new Date(exp * 1000).toLocaleString() + '.';
    } else if (!tokenCoversThisStream()) {
      text += ' This link’s token is for another stream.';
    }
    showError(text);
  }

  function retryLater(start) {
    if (retryTimer) {
      clearTimeout(retryTimer);
    }
    retryTimer = setTimeout(function () {
      retryTimer = null;
      start();
    }, RETRY_MS);
  }

  function waitForStream(start) {
    if (hls) {
      hls.destroy();
      hls = null;
    }
    setStatus('waiting', 'Waiting for the stream to start…');
    retryLater(start);
  }

  function play() {
    const attempt = video.play();
    if (attempt && attempt.catch) {
      attempt.catch(function () {
        // Autoplay was blocked: the controls are there to start it.
        if (video.paused) {
          setStatus(state.status, statusBox.textContent + ' (press play)');
        }
      });
    }
  }

  function formatBitrate(bitsPerSecond) {
    if (bitsPerSecond >= 1e6) {
      return (bitsPerSecond / 1e6).toFixed(2) + ' Mbit/s';
    }
    return Math.round(bitsPerSecond / 1e3) + ' kbit/s';
  }

  function updateStats() {
    if (video.videoWidth > 0) {
      resolutionBox.textContent = video.videoWidth + '×' + video.videoHeight;
    }
    let bytes = 0;
    let seconds = 0;
    for (const f of fragments) {
      bytes += f.bytes;
      seconds += f.seconds;
    }
    if (seconds > 0) {
      bitrateBox.textContent = formatBitrate((bytes * 8) / seconds);
    }
  }

  // --- hls.js -------------------------------------------------------------

  function loadHlsJs(then) {
    if (window.Hls) {
      then();
      return;
    }
    const url = main.dataset.hlsjsUrl;
    const script = document.createElement('script');
    script.src = url;
    if (main.dataset.hlsjsIntegrity) {
      script.integrity = main.dataset.hlsjsIntegrity;
      script.crossOrigin = 'anonymous';
    }
    script.onload = then;
    script.onerror = function () {
      setStatus('error', 'Error');
      showError('The player library (hls.js) could not be loaded from ' + url + '.');
    };
    document.head.appendChild(script);
  }

  function playWithHlsJs(playlistUrl) {
    const Hls = window.Hls;
    state.engine = 'hls.js';
    engineBox.textContent = 'hls.js ' + Hls.version;
    const start = function () {
      playWithHlsJs(playlistUrl);
    };
    const options = { liveDurationInfinity: true, backBufferLength: 30 };
    if (main.dataset.protected) {
      // Keys by license only, segments decrypted by the page (protected.js).
      const protectedConfig = window.SealcastProtected.hlsConfig(Hls, {
        licenseUrl: new URL(main.dataset.license, location.href).href,
        token: token,
        stream: main.dataset.stream,
        onRefused: function (code) {
          if (code === 401 || code === 403) {
            refuse();
          }
        },
      });
      options.pLoader = protectedConfig.pLoader;
      options.fLoader = protectedConfig.fLoader;
      state.protection = protectedConfig.stats;
    }
    hls = new Hls(options);
    hls.on(Hls.Events.MANIFEST_PARSED, function () {
      clearError();
      play();
    });
    hls.on(Hls.Events.LEVEL_LOADED, function (event, data) {
      if (data.details.live) {
        setStatus('live', 'Live');
      } else {
        setStatus('ended', 'Ended');
      }
    });
    hls.on(Hls.Events.FRAG_LOADED, function (event, data) {
      const stats = data.frag.stats || {};
      const bytes = stats.total || stats.loaded || 0;
      if (bytes > 0 && data.frag.duration > 0) {
        fragments.push({ bytes: bytes, seconds: data.frag.duration });
        if (fragments.length > 3) {
          fragments.shift();
        }
      }
    });
    hls.on(Hls.Events.ERROR, function (event, data) {
      const code = data.response && data.response.code;
      // A playlist or key refused: no token, an expired one, or one for
      // another stream. Retrying cannot help.
      if (code === 401 || code === 403) {
        refuse();
        return;
      }
      // No segment yet: the broadcaster has not started.
      if (code === 404 && data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR) {
        waitForStream(start);
        return;
      }
      if (!data.fatal) {
        return;
      }
      state.fatalErrors.push(data.details);
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
        mediaRecoveries += 1;
        hls.recoverMediaError();
        return;
      }
      stopPlayback();
      setStatus('error', 'Error');
      showError('Playback stopped (' + data.details + '). Retrying…');
      retryLater(start);
    });
    hls.loadSource(playlistUrl);
    hls.attachMedia(video);
  }

  // --- native HLS (Safari, iOS) ---------------------------------------------

  // A native player hides HTTP status codes, so the playlist is asked for
  // first: a refusal then reads as one rather than as a generic error.
  function checkPlaylist(playlistUrl, start) {
    return fetch(playlistUrl, { cache: 'no-store', credentials: 'omit' }).then(
      function (response) {
        if (response.status === 401 || response.status === 403) {
          refuse();
          return false;
        }
        if (response.status === 404) {
          waitForStream(start);
          return false;
        }
        if (!response.ok) {
          setStatus('error', 'Error');
          showError('The server answered ' + response.status + '. Retrying…');
          retryLater(start);
          return false;
        }
        return true;
      },
      function () {
        setStatus('error', 'Error');
        showError('The server cannot be reached. Retrying…');
        retryLater(start);
        return false;
      }
    );
  }

  function playNatively(playlistUrl) {
    state.engine = 'native';
    engineBox.textContent = 'native HLS';
    const start = function () {
      playNatively(playlistUrl);
    };
    checkPlaylist(playlistUrl, start).then(function (ok) {
      if (!ok) {
        return;
      }
      clearError();
      video.src = playlistUrl;
      play();
    });
  }

  // --- start ----------------------------------------------------------------

  video.addEventListener('durationchange', function () {
    if (state.engine === 'native' && state.status !== 'refused') {
      setStatus(video.duration === Infinity ? 'live' : 'ended', video.duration === Infinity ? 'Live' : 'Ended');
    }
  });
  video.addEventListener('ended', function () {
    setStatus('ended', 'Ended');
  });
  video.addEventListener('error', function () {
    if (state.engine === 'native' && !state.refused && video.getAttribute('src')) {
      // Maybe the token expired while playing: find out, then retry or refuse.
      checkPlaylist(video.currentSrc || video.src, function () {
        playNatively(video.src);
      });
    }
  });
  setInterval(updateStats, 1000);

  if (!token) {
    setStatus('refused', 'No token');
    showError(main.dataset.tokenNeededText);
    return;
  }
  const playlist = new URL(main.dataset.playlist, location.href);
  playlist.searchParams.set('token', token);
  const playlistUrl = playlist.href;

  // `?player=native` or `?player=hlsjs` picks a player, for trying the other
  // one. Otherwise Apple's own player is preferred where there is one (AirPlay,
  // power use, iOS without MediaSource); Chromium also answers "maybe" for
  // HLS now, but there hls.js plays the same stream and reports errors the
  // page can explain.
  const forced = main.dataset.protected ? 'hlsjs' : params.get('player');
  const nativeHls = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  const apple = /Apple/.test(navigator.vendor || '');
  if (forced === 'native' || (forced !== 'hlsjs' && nativeHls && apple)) {
    playNatively(playlistUrl);
    return;
  }
  loadHlsJs(function () {
    if (main.dataset.protected && !(window.SealcastProtected && window.SealcastProtected.supported)) {
      setStatus('error', 'Error');
      showError('This protected stream needs Web Crypto (a current browser, over HTTPS or localhost).');
    } else if (window.Hls && window.Hls.isSupported()) {
      playWithHlsJs(playlistUrl);
    } else if (nativeHls && !main.dataset.protected) {
      playNatively(playlistUrl);
    } else {
      setStatus('error', 'Error');
      showError('This browser cannot play HLS video.');
    }
  });
})();
