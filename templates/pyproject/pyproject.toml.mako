
[tool.asyncmigrate]
# Path to the migration scripts (env.py, script.py.mako, versions/).
script_location = "${script_location}"

# Added to sys.path so env.py and revision files can import your code.
prepend_sys_path = ["."]

# Revision file names: %%(rev)s, %%(slug)s, %%(year)d, %%(month).2d ...
# file_template = "%%(year)d_%%(month).2d_%%(day).2d-%%(rev)s_%%(slug)s"

# Cross-process migration lock; seconds to wait for another migrator.
# lock = true
# lock_timeout = 300

# Format new revision files:
# [[tool.asyncmigrate.post_write_hooks]]
# name = "ruff"
# type = "module"
# module = "ruff"
# options = "format REVISION_SCRIPT_FILENAME"
