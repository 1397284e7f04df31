# Kernels for the demo notebooks (tests and saved outputs): C++ libraries' own log lines (TensorFlow's
# absl logging writes timestamps to fd 2) stay in the kernel's terminal instead of the cells' outputs,
# so saved outputs are what the Python code prints and nbval can compare them.
c = get_config()  # noqa: F821 - provided by IPython when it loads this file
c.IPKernelApp.capture_fd_output = False
