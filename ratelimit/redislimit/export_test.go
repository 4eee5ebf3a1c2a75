package redislimit

// RunScript runs the window script as the Limiter does, for tests that
// drive it with raw arguments.
var RunScript = runScript
