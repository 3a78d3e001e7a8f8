# Sourced by tools/test and tools/bench: makes sure the Debian packages gpt2c
# needs are installed. As root it installs what is missing; otherwise it prints
# the exact apt-get line and fails.
GPT2C_DEBS="build-essential cmake pkg-config check libcjson-dev libutf8proc-dev libopenblas-dev zlib1g-dev python3 python3-numpy python3-regex python3-jsonschema"

gpt2c_ensure_debs() {
    local missing=()
    local p
    for p in $GPT2C_DEBS "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "gpt2c: installing missing packages: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
            { echo "gpt2c: apt-get install failed" >&2; return 1; }
    else
        echo "gpt2c: missing packages: ${missing[*]}" >&2
        echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

# Configures (once) and builds a build directory: gpt2c_build DIR [cmake args...]
gpt2c_build() {
    local dir=$1
    shift
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        mkdir -p "$dir"
        cmake -S "$GPT2C_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir/configure.log" 2>&1 ||
            { cat "$dir/configure.log" >&2; echo "gpt2c: cmake configure failed" >&2; return 1; }
    fi
    local rc=0
    echo "gpt2c: building in $dir/ ..." >&2
    cmake --build "$dir" -j "$(nproc)" >"$dir/build.log" 2>&1 || rc=$?
    # show warnings and errors, not the progress lines
    grep -vE '^\[ *[0-9]+%\] (Building|Linking|Built target)|^Consolidate|^Scanning|^gmake' "$dir/build.log" >&2 || true
    [ "$rc" -eq 0 ] || echo "gpt2c: build failed (full log: $dir/build.log)" >&2
    return "$rc"
}
