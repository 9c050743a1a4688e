"""Process-level hooks of the native extension.

At interpreter exit the extension must stop taking the GIL from its own threads and must
not close Zenoh sessions from finalizers; this hook tells it that the exit has begun.
Sessions should be closed explicitly (``close()`` or ``with``) before that.
"""

import atexit

from evospikenet import _native

atexit.register(_native._interpreter_exiting)
