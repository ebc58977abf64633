/*
 * oneMKL's test "is this an Intel CPU?", answered yes.
 *
 * oneMKL picks its kernels by CPU vendor before it looks at the instruction set: on an AMD CPU
 * it runs generic AVX2 code even where the CPU has AVX-512. Loaded into the process's global
 * symbol scope before torch (which carries oneMKL) is loaded, this definition takes the place of
 * oneMKL's own, so oneMKL chooses its kernels by the CPU's features alone. alstm/mkl_path.py
 * loads it, only on AMD CPUs with AVX-512; see there for what it changes and how to turn it off.
 *
 * It is built as a Python extension so that pip compiles it with the package; Python never
 * imports it (PyInit is there so that an import would not fail).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

int mkl_serv_intel_cpu_true(void) { return 1; }

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mkl_intel_path",
    "oneMKL's vendor test answered yes (loaded by alstm.mkl_path, not imported).", -1, NULL,
};

PyMODINIT_FUNC PyInit__mkl_intel_path(void) { return PyModule_Create(&module); }
