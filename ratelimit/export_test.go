package ratelimit

import "unsafe"

// Sweep runs one sweep now, as the sweeper does every interval.
func (m *Memory) Sweep() { m.sweep() }

// WindowSize is the bytes one key's window takes, whatever its limit.
func WindowSize() uintptr { return unsafe.Sizeof(window{}) }
