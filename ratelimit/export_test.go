package ratelimit

import "unsafe"

// Sweep runs one sweep now, as the sweeper does every interval.
func (m *Memory) Sweep() { m.sweep() }

// WindowSize is the bytes one key's window takes, whatever its limit.
func WindowSize() uintptr { return unsafe.Sizeof(window{}) }

// KnownEpoch is the backend's epoch as the Fallback last learned it.
func (f *Fallback) KnownEpoch() string { return f.knownEpoch() }
