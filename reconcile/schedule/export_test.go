package schedule

// Prepare exposes the prepare stage to the package's external tests.
var Prepare = prepare
