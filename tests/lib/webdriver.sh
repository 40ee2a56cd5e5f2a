# tests/lib/webdriver.sh - a headless Chromium driven from bash through chromedriver (WebDriver).
#
# Source it after tests/lib/cluster.sh and rt_setup; it needs chromedriver (Debian's
# chromium-driver), chromium, curl and jq:
#
#     source "$RT_SRC/tests/lib/cluster.sh"
#     source "$RT_SRC/tests/lib/webdriver.sh"
#     rt_setup
#     rt_webdriver_start
#     rt_webdriver_session
#     rt_webdriver_open "http://127.0.0.1:$PORT/"
#     rt_wait_until 15 "the row of r1" rt_webdriver_exists '#subs tr[data-name="r1"]'
#     rt_webdriver_click '#subs tr[data-name="r1"] button'
#     rt_webdriver_stop
#
# Elements are named by CSS selectors and looked up afresh at every call, so a page
# that redraws itself never leaves a stale reference behind. Every function returns
# non-zero on failure after printing why to stderr (as in cluster.sh); every request
# to chromedriver is bounded (RT_WEBDRIVER_TIMEOUT seconds, default 30; 60 for the
# browser's start). chromedriver is a daemon of cluster.sh, stopped by pid; the browser
# it starts outlives it when it is killed, so each browser is ended through its session
# and then by pid (every process of its private profile), at rt_webdriver_stop or by
# the EXIT trap.

if [[ -n "${RT_WEBDRIVER_SH_LOADED:-}" ]]; then
    return 0
fi
RT_WEBDRIVER_SH_LOADED=1

declare -g RT__WD_URL=""       # chromedriver's address, http://127.0.0.1:PORT, once started
declare -g RT__WD_SESSION=""   # the open session's id, or ""
declare -ga RT__WD_PROFILES=() # the browser profiles made, one a session

# The key of an element reference in WebDriver answers.
RT__WD_ELEMENT="element-6066-11e4-a52e-4f735466cecf"

# rt__webdriver_call METHOD PATH [JSON] [TIMEOUT_S] (internal)
# Sends a WebDriver command to chromedriver (PATH below its address; a JSON body for
# POST) and prints the "value" of the answer, as compact JSON. On an error answer prints
# its error and first line of message to stderr and returns 1.
rt__webdriver_call() {
    local method="$1" path="$2" body="${3:-}" timeout="${4:-${RT_WEBDRIVER_TIMEOUT:-30}}" out code
    [[ -n "$RT__WD_URL" ]] || rt__err "webdriver: call rt_webdriver_start first" || return 1
    local -a args=(-sS --max-time "$timeout" -X "$method" -w '\n%{http_code}')
    if [[ -n "$body" ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    out="$(curl "${args[@]}" "$RT__WD_URL$path")" ||
        rt__err "webdriver: $method $path: no answer from chromedriver" || return 1
    code="${out##*$'\n'}"
    out="${out%$'\n'*}"
    if [[ "$code" != 200 ]]; then
        rt__err "webdriver: $method $path: HTTP $code $(jq -r '.value.error + ": " +
            (.value.message | split("\n")[0])' <<<"$out" 2>/dev/null)"
        return 1
    fi
    jq -c '.value' <<<"$out"
}

# rt__webdriver_in_session (internal)
# Fails unless a session is open.
rt__webdriver_in_session() {
    [[ -n "$RT__WD_SESSION" ]] || rt__err "webdriver: call rt_webdriver_session first"
}

# rt_webdriver_start
# Starts chromedriver on a free port of 127.0.0.1 as the daemon "webdriver" of
# cluster.sh (log RT_TMP/webdriver.log) and waits (at most 30 s) until it is ready for
# sessions. Registers for the EXIT trap the end of the browser and of chromedriver.
rt_webdriver_start() {
    local port deadline
    [[ -z "$RT__WD_URL" ]] || rt__err "rt_webdriver_start: chromedriver already runs" || return 1
    command -v chromedriver >/dev/null 2>&1 ||
        rt__err "chromedriver is not installed (apt-get install chromium-driver)" || return 1
    command -v jq >/dev/null 2>&1 || rt__err "jq is not installed (apt-get install jq)" || return 1
    port="$(rt_free_port)" || return 1
    rt_at_exit rt__webdriver_cleanup
    rt_start_bg webdriver "$RT_TMP/webdriver.log" chromedriver --port="$port" || return 1
    RT__WD_URL="http://127.0.0.1:$port"
    deadline=$(($(rt__now_ms) + 30000))
    while :; do
        if [[ "$(rt__webdriver_call GET /status "" 2 2>/dev/null | jq -r .ready 2>/dev/null)" == true ]]; then
            return 0
        fi
        if ! rt_daemon_alive webdriver || (($(rt__now_ms) > deadline)); then
            rt__log_tail webdriver "$RT_TMP/webdriver.log" 20
            rt__err "rt_webdriver_start: chromedriver is not ready on port $port"
            rt_webdriver_stop >/dev/null 2>&1
            return 1
        fi
        sleep 0.2
    done
}

# rt_webdriver_session [ARG...]
# Opens a session: a headless Chromium (no sandbox, GPU, QUIC, first-run, background
# networking, component updates or sync) with a fresh profile under RT_TMP, plus the
# browser ARGs given. Waits at most 60 s for the browser. One session at a time.
rt_webdriver_session() {
    local browser profile body value
    [[ -z "$RT__WD_SESSION" ]] || rt__err "rt_webdriver_session: a session is open" || return 1
    browser="$(command -v chromium || command -v chromium-browser || true)"
    [[ -n "$browser" ]] || rt__err "chromium is not installed (apt-get install chromium)" || return 1
    profile="$(mktemp -d "$RT_TMP/chromium.XXXXXX")" || return 1
    RT__WD_PROFILES+=("$profile")
    body="$(jq -n --arg browser "$browser" --arg profile "$profile" '$ARGS.positional as $extra |
        {capabilities: {alwaysMatch: {"goog:chromeOptions": {binary: $browser, args: ([
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + $profile] + $extra)}}}}' --args "$@")" || return 1
    value="$(rt__webdriver_call POST /session "$body" 60)" || return 1
    RT__WD_SESSION="$(jq -r .sessionId <<<"$value")"
    [[ -n "$RT__WD_SESSION" && "$RT__WD_SESSION" != null ]] ||
        { RT__WD_SESSION=""; rt__err "rt_webdriver_session: no session id in $value"; }
}

# rt_webdriver_open URL
# Loads URL in the session's window and waits (bounded) until it has loaded.
rt_webdriver_open() {
    rt__webdriver_in_session || return 1
    rt__webdriver_call POST "/session/$RT__WD_SESSION/url" "$(jq -n --arg url "$1" '{url: $url}')" \
        >/dev/null
}

# rt_webdriver_find CSS
# Prints the reference of the first element matching the CSS selector; fails, printing
# why, if there is none.
rt_webdriver_find() {
    local value
    rt__webdriver_in_session || return 1
    value="$(rt__webdriver_call POST "/session/$RT__WD_SESSION/element" \
        "$(jq -n --arg css "$1" '{using: "css selector", value: $css}')")" || return 1
    jq -r --arg key "$RT__WD_ELEMENT" '.[$key]' <<<"$value"
}

# rt_webdriver_exists CSS
# True when an element matches the CSS selector; prints nothing (for rt_wait_until).
rt_webdriver_exists() {
    rt_webdriver_find "$1" >/dev/null 2>&1
}

# rt_webdriver_type CSS TEXT
# Types TEXT into the first element matching the CSS selector (an input), as a user
# would.
rt_webdriver_type() {
    local el
    el="$(rt_webdriver_find "$1")" || return 1
    rt__webdriver_call POST "/session/$RT__WD_SESSION/element/$el/value" \
        "$(jq -n --arg t "$2" '{text: $t}')" >/dev/null
}

# rt_webdriver_click CSS
# Clicks the first element matching the CSS selector, as a user would (it must be
# visible and enabled). While another element covers it for a moment (the page still
# laying out or drawing its rows again) or it was replaced since it was found, it is
# found and clicked again, for at most 5 s.
rt_webdriver_click() {
    local el err i
    for ((i = 1; ; i++)); do
        el="$(rt_webdriver_find "$1")" || return 1
        err="$(rt__webdriver_call POST "/session/$RT__WD_SESSION/element/$el/click" '{}' 2>&1 \
            >/dev/null)" && return 0
        if ((i < 20)) && [[ "$err" == *"click intercepted"* || "$err" == *"stale element"* ]]; then
            sleep 0.25
            continue
        fi
        echo "$err" >&2
        return 1
    done
}

# rt_webdriver_text CSS
# Prints the text the user sees in the first element matching the CSS selector.
rt_webdriver_text() {
    local el
    el="$(rt_webdriver_find "$1")" || return 1
    rt__webdriver_call GET "/session/$RT__WD_SESSION/element/$el/text" | jq -r .
}

# rt_webdriver_has_text CSS TEXT
# True when the first element matching the CSS selector shows TEXT (as a part of its
# text); prints nothing (for rt_wait_until).
rt_webdriver_has_text() {
    local text
    text="$(rt_webdriver_text "$1" 2>/dev/null)" || return 1
    [[ "$text" == *"$2"* ]]
}

# rt__webdriver_window WIDTH HEIGHT (internal)
# Sizes the session's browser window (frame included) to WIDTH x HEIGHT.
rt__webdriver_window() {
    rt__webdriver_call POST "/session/$RT__WD_SESSION/window/rect" \
        "$(jq -n --argjson w "$1" --argjson h "$2" '{width: $w, height: $h}')" >/dev/null
}

# rt_webdriver_screenshot FILE [WIDTH HEIGHT]
# Sizes the window so that the page is shown in WIDTH x HEIGHT pixels (default
# 1200 x 800) and saves what it shows as a PNG in FILE.
rt_webdriver_screenshot() {
    local file="$1" width="${2:-1200}" height="${3:-800}" inner png
    rt__webdriver_in_session || return 1
    rt__webdriver_window "$width" "$height" || return 1
    # The window's frame takes some of it: grow the window by what the page lacks.
    inner="$(rt__webdriver_call POST "/session/$RT__WD_SESSION/execute/sync" \
        '{"script": "return [window.innerWidth, window.innerHeight];", "args": []}')" || return 1
    rt__webdriver_window "$((2 * width - $(jq '.[0]' <<<"$inner")))" \
        "$((2 * height - $(jq '.[1]' <<<"$inner")))" || return 1
    png="$(rt__webdriver_call GET "/session/$RT__WD_SESSION/screenshot")" || return 1
    jq -r . <<<"$png" | base64 -d >"$file"
}

# rt__webdriver_browser_pids (internal)
# Prints the pids of the live processes started with one of the profiles made as their
# profile (--user-data-dir): each browser and every process it started.
rt__webdriver_browser_pids() {
    local profile re file pid
    for profile in "${RT__WD_PROFILES[@]}"; do
        # An argument of its own (the browser's) or a word of the one argument that its
        # child processes rewrite their command line into; the [r] keeps grep from
        # matching its own.
        re="(^| )--user-data-di[r]=${profile//./\\.}( |\$)"
        while read -r file; do
            pid="${file#/proc/}"
            pid="${pid%/cmdline}"
            rt__alive "$pid" && echo "$pid"
        done < <(grep -alzE -e "$re" /proc/[0-9]*/cmdline 2>/dev/null)
    done
    return 0
}

# rt__webdriver_end_browsers (internal)
# Waits (at most 10 s) for the processes of every profile made to end, then kills the
# ones left by pid and waits (at most 5 s more). Fails, printing them, if some remain.
rt__webdriver_end_browsers() {
    local i
    local -a left
    for ((i = 0; i < 75; i++)); do
        mapfile -t left < <(rt__webdriver_browser_pids)
        ((${#left[@]} > 0)) || return 0
        if ((i == 50)); then
            echo "webdriver: browser processes still running, sending SIGKILL: ${left[*]}" >&2
            kill -KILL "${left[@]}" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rt__err "webdriver: browser processes still running: ${left[*]}"
}

# rt_webdriver_quit
# Ends the session: chromedriver closes its browser; any process of the browser left
# after 10 s is killed by pid. A no-op without a session.
rt_webdriver_quit() {
    local rc=0
    [[ -n "$RT__WD_SESSION" ]] || return 0
    rt__webdriver_call DELETE "/session/$RT__WD_SESSION" >/dev/null || rc=1
    RT__WD_SESSION=""
    rt__webdriver_end_browsers || rc=1
    return "$rc"
}

# rt_webdriver_stop
# Ends the session if one is open (rt_webdriver_quit), then stops chromedriver by its
# pid (SIGTERM, SIGKILL after 10 s) and any browser process still left, by pid.
rt_webdriver_stop() {
    local rc=0
    [[ -n "$RT__WD_URL" ]] || return 0
    rt_webdriver_quit || rc=1
    rt_stop_daemon webdriver >/dev/null 2>&1 || true
    RT__WD_URL=""
    rt__webdriver_end_browsers || rc=1
    return "$rc"
}

# rt__webdriver_cleanup (internal, registered with rt_at_exit)
# rt_webdriver_stop with shorter requests, for the EXIT trap.
rt__webdriver_cleanup() {
    RT_WEBDRIVER_TIMEOUT=10 rt_webdriver_stop
}
