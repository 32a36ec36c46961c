// Package recipes is prebake's recipe model: strict loading of versioned
// recipe files (every problem reported with file:line:column), variables and
// templating, defaults, validation and lock files. It does no I/O beyond
// reading the recipe and the files it names, and imports no other prebake
// package.
package recipes
