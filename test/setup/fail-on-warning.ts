// Any process warning (deprecation, unhandled-rejection style warnings) fails the run,
// as execa's test setup does: warnings are bugs we would otherwise ignore.
process.on('warning', (warning) => {
  throw warning;
});
