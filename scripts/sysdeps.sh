#!/usr/bin/env bash
# System libraries the runtime and its tests need: PortAudio (sounddevice), PulseAudio and ALSA's pulse plugin (the virtual microphone
# of the listen integration test), mosquitto (the MQTT sink's tests run a real broker), chromium (the dashboard's test
# loads the page headless) and iproute2 (the ROS 2 round trip runs in a loopback-only network namespace).  Installs only what is missing; needs root and apt-get, else says what to do.
set -u
need=()
for pkg in libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils mosquitto chromium iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || { echo "warning: apt-get could not install ${need[*]}" >&2; exit 0; }
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages with sudo: ${need[*]}"
  sudo apt-get install -y -qq --no-install-recommends "${need[@]}" || echo "warning: could not install ${need[*]}" >&2
else
  echo "warning: please install ${need[*]} (microphone input and the listen integration test need them)" >&2
fi
exit 0
