"""Web admin pages. Views are thin: parse a form, fetch through webadmin.access, call a
``do_*`` service, render."""
