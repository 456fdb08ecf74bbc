/**
 * The programs the escape probes run INSIDE a sandbox. They are python3 (the host's /usr, which
 * every namespace sandbox sees; other drivers' images carry it too) so that raw system calls,
 * descriptors and socket options are reachable without a compiler. Each reads one JSON argument
 * (sys.argv[1]) and prints one JSON line, framed by markers so that a terminal's echo and CR/LF
 * translation cannot confuse the reader. System call numbers are x86_64's: on another machine
 * the scripts say so instead of passing for the wrong reason.
 */

export const JSON_BEGIN = "<<polydev-probe-json>>";
export const JSON_END = "<<end-polydev-probe-json>>";

const PRELUDE = String.raw`
import ctypes, errno, json, os, platform, re, socket, struct, sys
ARG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
def emit(value):
    sys.stdout.write("${JSON_BEGIN}" + json.dumps(value) + "${JSON_END}\n")
    sys.stdout.flush()
if platform.machine() != "x86_64":
    emit({"unsupportedArch": platform.machine()})
    sys.exit(0)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sys_call(number, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *[a if not isinstance(a, int) else ctypes.c_long(a) for a in args])
    return result, ctypes.get_errno()
def errname(code):
    return errno.errorcode.get(code, str(code))
def pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"
`;

/**
 * Every descriptor (plus cwd and root) of every process the caller can inspect, judged by what
 * it really is: a path must name the same file inside the sandbox, a socket must live in the
 * sandbox's network namespace, a namespace descriptor must be one of the sandbox's own, a
 * deleted file must sit on a filesystem only the sandbox has. Also the caller's own descriptors
 * and every readable environment block.
 */
export const SURVEY_SCRIPT = String.raw`${PRELUDE}
own_ns = set()
for name in os.listdir("/proc/self/ns"):
    try:
        own_ns.add(os.readlink("/proc/self/ns/" + name))
    except OSError:
        pass
INODE_COLUMN = {"unix": 6, "netlink": 9, "packet": 8}
sockets = set()
for table in ("unix", "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6", "icmp", "icmp6", "netlink", "packet"):
    try:
        with open("/proc/net/" + table) as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        continue
    column = INODE_COLUMN.get(table, 9)
    for row in rows:
        fields = row.split()
        if len(fields) > column and fields[column].isdigit():
            sockets.add(int(fields[column]))
PRIVATE_FS = ("tmpfs", "devpts", "mqueue", "proc", "ramfs")
private_devs = set()
with open("/proc/self/mountinfo") as f:
    for line in f:
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype = right.split()[0] if right else ""
        root, mountpoint = fields[3], fields[4]
        if fstype in PRIVATE_FS and (root == "/" or mountpoint == "/"):
            try:
                private_devs.add(os.stat(mountpoint.replace("\\040", " ")).st_dev)
            except OSError:
                pass
def judge(target, st):
    if target.startswith("pipe:") or target.startswith("anon_inode:") or target.startswith("/memfd:"):
        return None
    if target.startswith("socket:["):
        return None if int(target[8:-1]) in sockets else "a socket outside this sandbox's network namespace"
    if re.match(r"^[a-z_]+:\[\d+\]$", target):
        return None if target in own_ns else "a namespace that is not this sandbox's"
    path = target
    if path.endswith(" (deleted)"):
        return None if st.st_dev in private_devs else "a deleted file on a filesystem the sandbox does not own"
    try:
        inside = os.stat(path)
    except OSError:
        return "a file whose path does not exist inside the sandbox"
    if (inside.st_dev, inside.st_ino) != (st.st_dev, st.st_ino):
        return "a file other than the one its path names inside the sandbox"
    return None
me = os.getpid()
result = {"self": me, "checked": 0, "uninspectable": [], "foreign": [], "environ": [], "ownFds": {}}
for pid in pids():
    base = "/proc/%d" % pid
    entries = ["cwd", "root"]
    try:
        entries += ["fd/" + fd for fd in os.listdir(base + "/fd")]
    except OSError as error:
        result["uninspectable"].append([pid, comm(pid), errname(error.errno)])
    for entry in entries:
        link = base + "/" + entry
        try:
            target = os.readlink(link)
            st = os.stat(link)
        except OSError:
            continue
        if pid == me and entry.startswith("fd/") and target == base + "/fd":
            continue
        result["checked"] += 1
        verdict = judge(target, st)
        if verdict is not None:
            result["foreign"].append({"pid": pid, "comm": comm(pid), "entry": entry, "target": target, "why": verdict})
    try:
        with open(base + "/environ", "rb") as f:
            block = f.read()
        result["environ"].append({"pid": pid, "comm": comm(pid), "vars": [v.decode("utf-8", "replace") for v in block.split(b"\0") if v]})
    except OSError:
        pass
for fd in os.listdir("/proc/self/fd"):
    try:
        result["ownFds"][fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
emit(result)
`;

/**
 * Tries to type into any terminal it can get hold of: its own inherited descriptors, every
 * other process's descriptors (by pidfd_getfd), and every terminal device path. Each gets the
 * payload written and pushed as input (TIOCSTI).
 */
export const TERMINAL_INJECT_SCRIPT = String.raw`${PRELUDE}
import fcntl, glob
TIOCSTI = 0x5412
payload = ("echo " + ARG["marker"] + "\n").encode()
attempts = []
def poke(fd, label):
    record = {"target": label}
    try:
        os.write(fd, payload)
        record["write"] = "ok"
    except OSError as error:
        record["write"] = errname(error.errno)
    try:
        for byte in payload:
            fcntl.ioctl(fd, TIOCSTI, bytes([byte]))
        record["tiocsti"] = "ok"
    except OSError as error:
        record["tiocsti"] = errname(error.errno)
    attempts.append(record)
def terminal_like(target):
    return "pts" in target or "ptmx" in target or "tty" in target or "console" in target
for fd in os.listdir("/proc/self/fd"):
    number = int(fd)
    if number <= 2:
        continue
    try:
        target = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        continue
    if terminal_like(target) or os.isatty(number):
        poke(number, "inherited fd %d -> %s" % (number, target))
for pid in pids():
    if pid == os.getpid():
        continue
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        fds = [str(n) for n in range(0, 64)]
    pidfd, err = sys_call(434, pid, 0)
    for fd in fds:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            target = "?"
        if target != "?" and not terminal_like(target):
            continue
        if pidfd >= 0:
            copy, err = sys_call(438, pidfd, int(fd), 0)
            if copy >= 0:
                poke(copy, "pidfd_getfd %d:%s -> %s" % (pid, fd, target))
                os.close(copy)
        if target != "?":
            try:
                reopened = os.open("/proc/%d/fd/%s" % (pid, fd), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                poke(reopened, "reopened /proc/%d/fd/%s -> %s" % (pid, fd, target))
                os.close(reopened)
            except OSError:
                pass
    if pidfd >= 0:
        os.close(pidfd)
for path in sorted(set(glob.glob("/dev/pts/*")) | {"/dev/tty", "/dev/console", "/dev/tty0", "/dev/tty1", "/dev/ttyS0"}):
    if path.endswith("/ptmx"):
        continue
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as error:
        attempts.append({"target": path, "open": errname(error.errno)})
        continue
    poke(fd, path)
    os.close(fd)
emit({"attempts": attempts, "pts": sorted(glob.glob("/dev/pts/*"))})
`;

/**
 * Connects to every unix socket it can find (files anywhere but /usr, /proc and /sys; abstract
 * names from /proc/net/unix; extra names given) and reports whose process answered: the
 * SO_PEERCRED pid is 0 when the listener lives outside the caller's pid namespace.
 */
export const SOCKET_PEERS_SCRIPT = String.raw`${PRELUDE}
import stat as S
found = []
for root, dirs, files in os.walk("/", topdown=True):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "usr")]
    for name in files:
        path = os.path.join(root, name)
        try:
            if S.S_ISSOCK(os.lstat(path).st_mode):
                found.append(path)
        except OSError:
            pass
try:
    with open("/proc/net/unix") as f:
        for row in f.read().splitlines()[1:]:
            fields = row.split()
            if len(fields) >= 8 and fields[7].startswith("@"):
                found.append("\0" + fields[7][1:])
except OSError:
    pass
for name in ARG.get("abstract", []):
    found.append("\0" + name)
for path in ARG.get("paths", []):
    found.append(path)
answers = []
for address in sorted(set(found)):
    record = {"address": address.replace("\0", "@")}
    for kind in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
        s = socket.socket(socket.AF_UNIX, kind)
        s.settimeout(2)
        try:
            s.connect(address)
            pid, uid, gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            record.update({"connected": True, "peerPid": pid, "peerUid": uid})
            break
        except OSError as error:
            record["error"] = errname(error.errno) if error.errno else str(error)
        finally:
            s.close()
    answers.append(record)
emit({"answers": answers})
`;

/** TCP connections to [host, port] pairs, in parallel, each with a short timeout. */
export const CONNECT_SCRIPT = `${PRELUDE}
import threading
results = {}
def attempt(host, port):
    key = "%s:%d" % (host, port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(ARG.get("timeoutSec", 3))
    try:
        s.connect((host, port))
        try:
            greeting = s.recv(64).decode("utf-8", "replace")
        except OSError:
            greeting = ""
        results[key] = "connected " + greeting.strip()
    except socket.timeout:
        results[key] = "timeout"
    except OSError as error:
        results[key] = errname(error.errno) if error.errno else str(error)
    finally:
        s.close()
threads = [threading.Thread(target=attempt, args=(host, port)) for host, port in ARG["targets"]]
for t in threads:
    t.start()
for t in threads:
    t.join()
emit(results)
`;

/**
 * Calls each named privileged or dangerous operation once and reports whether the kernel let it
 * through. Anything that succeeded is undone at once (descriptors closed, a traced process
 * detached). "ptrace-own-child" is the one that must succeed: gdb and strace need it.
 */
export const SYSCALLS_SCRIPT = String.raw`${PRELUDE}
import mmap, signal, time
O_CLOEXEC = 0o2000000
def result_of(ret, err, close=True):
    if ret >= 0 and close:
        try:
            os.close(ret)
        except OSError:
            pass
    return {"allowed": ret >= 0, "errno": None if ret >= 0 else errname(err)}
def buf(data):
    return ctypes.create_string_buffer(bytes(data), len(data))
def kexec_load():
    return result_of(*sys_call(246, 0, 0, None, 0), close=False)
def kexec_file_load():
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        return result_of(*sys_call(320, fd, fd, 0, None, 0), close=False)
    finally:
        os.close(fd)
def init_module():
    image = buf(b"\x7fELF" + b"\0" * 60)
    return result_of(*sys_call(175, image, 64, ctypes.c_char_p(b"")), close=False)
def finit_module():
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        return result_of(*sys_call(313, fd, ctypes.c_char_p(b""), 0), close=False)
    finally:
        os.close(fd)
def delete_module():
    return result_of(*sys_call(176, ctypes.c_char_p(b"polydev_probe_none"), 0o4000), close=False)
def bpf_map_create():
    attr = bytearray(72)
    struct.pack_into("IIII", attr, 0, 2, 4, 4, 1)
    return result_of(*sys_call(321, 0, buf(attr), 72))
def bpf_prog_load():
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    code = buf(insns)
    license = ctypes.c_char_p(b"GPL")
    attr = bytearray(128)
    struct.pack_into("IIQQ", attr, 0, 1, 2, ctypes.addressof(code), ctypes.cast(license, ctypes.c_void_p).value)
    return result_of(*sys_call(321, 5, buf(attr), 128))
def perf_event_open():
    attr = bytearray(128)
    struct.pack_into("IIQ", attr, 0, 1, 128, 0)
    struct.pack_into("Q", attr, 40, 1 | 32 | 64)
    return result_of(*sys_call(298, buf(attr), 0, -1, -1, 0))
def userfaultfd():
    user_mode_only = 1
    return result_of(*sys_call(323, O_CLOEXEC | os.O_NONBLOCK | user_mode_only))
def add_key():
    return result_of(*sys_call(248, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"polydev-probe"), ctypes.c_char_p(b"x"), 1, -2), close=False)
def keyctl():
    return result_of(*sys_call(250, 0, -3, 1), close=False)
def io_uring_setup():
    params = bytearray(120)
    return result_of(*sys_call(425, 4, buf(params)))
def open_by_handle_at():
    handle = bytearray(8 + 128)
    struct.pack_into("Ii", handle, 0, 128, 0)
    mount_id = ctypes.c_int(0)
    ret, err = sys_call(303, -100, ctypes.c_char_p(b"/"), buf(handle), ctypes.byref(mount_id), 0)
    if ret != 0:
        struct.pack_into("Ii", handle, 0, 8, 1)
    return result_of(*sys_call(304, -100, buf(handle), os.O_RDONLY))
def clock_settime():
    ts = buf(struct.pack("qq", int(time.time()), 0))
    return result_of(*sys_call(227, 0, ts), close=False)
def settimeofday():
    tv = buf(struct.pack("qq", int(time.time()), 0))
    return result_of(*sys_call(164, tv, None), close=False)
def reboot():
    return result_of(*sys_call(169, 0xfee1dead, 672274793, 0, None), close=False)
def swapon():
    return result_of(*sys_call(167, ctypes.c_char_p(b"/dev/null"), 0), close=False)
def acct():
    return result_of(*sys_call(163, None), close=False)
def syslog_read():
    area = ctypes.create_string_buffer(4096)
    return result_of(*sys_call(103, 3, area, 4096), close=False)
def mount_tmpfs():
    os.makedirs("/tmp/polydev-probe-mnt", exist_ok=True)
    ret, err = sys_call(165, ctypes.c_char_p(b"none"), ctypes.c_char_p(b"/tmp/polydev-probe-mnt"), ctypes.c_char_p(b"tmpfs"), 0, None)
    if ret == 0:
        sys_call(166, ctypes.c_char_p(b"/tmp/polydev-probe-mnt"), 2)
    return result_of(ret, err, close=False)
def mount_bind():
    os.makedirs("/tmp/polydev-probe-mnt", exist_ok=True)
    ret, err = sys_call(165, ctypes.c_char_p(b"/usr"), ctypes.c_char_p(b"/tmp/polydev-probe-mnt"), None, 4096, None)
    if ret == 0:
        sys_call(166, ctypes.c_char_p(b"/tmp/polydev-probe-mnt"), 2)
    return result_of(ret, err, close=False)
def mount_cgroup(kind, options):
    os.makedirs("/tmp/polydev-probe-cg", exist_ok=True)
    ret, err = sys_call(165, ctypes.c_char_p(b"cgroup"), ctypes.c_char_p(b"/tmp/polydev-probe-cg"), ctypes.c_char_p(kind), 0, None if options is None else ctypes.c_char_p(options))
    if ret == 0:
        sys_call(166, ctypes.c_char_p(b"/tmp/polydev-probe-cg"), 2)
    return result_of(ret, err, close=False)
def in_child(flags):
    pid = os.fork()
    if pid == 0:
        ret, err = sys_call(272, flags)
        os._exit(0 if ret == 0 else 100 + (err % 100))
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status)
    return {"allowed": code == 0, "errno": None if code == 0 else errname(code - 100)}
def unshare_user():
    return in_child(0x10000000)
def unshare_mount():
    return in_child(0x00020000)
def unshare_net():
    return in_child(0x40000000)
def mknod_char():
    path = "/tmp/polydev-probe-mem"
    ret, err = sys_call(133, ctypes.c_char_p(path.encode()), 0o20666, os.makedev(1, 1))
    if ret == 0:
        os.unlink(path)
    return result_of(ret, err, close=False)
def mknod_block():
    path = "/tmp/polydev-probe-blk"
    ret, err = sys_call(133, ctypes.c_char_p(path.encode()), 0o60666, os.makedev(254, 0))
    if ret == 0:
        os.unlink(path)
    return result_of(ret, err, close=False)
def sethostname():
    name = ARG.get("hostname", "polydev-probe").encode()
    return result_of(*sys_call(170, ctypes.c_char_p(name), len(name)), close=False)
def traced_detach(pid):
    try:
        os.waitpid(pid, 0x40000000)
    except OSError:
        pass
    sys_call(101, 17, pid, 0, 0)
def ptrace_attach_init():
    ret, err = sys_call(101, 16, 1, 0, 0)
    if ret == 0:
        traced_detach(1)
    return result_of(ret, err, close=False)
def ptrace_seize_init():
    ret, err = sys_call(101, 0x4206, 1, 0, 0)
    if ret == 0:
        sys_call(101, 17, 1, 0, 0)
    return result_of(ret, err, close=False)
def process_vm_readv_init():
    local = ctypes.create_string_buffer(8)
    local_iov = buf(struct.pack("QQ", ctypes.addressof(local), 8))
    remote_iov = buf(struct.pack("QQ", 0x400000, 8))
    ret, err = sys_call(310, 1, local_iov, 1, remote_iov, 1, 0)
    # EFAULT means the kernel let us in and only the address was wrong.
    if ret < 0 and err == errno.EFAULT:
        return {"allowed": True, "errno": "EFAULT (access granted)"}
    return result_of(ret, err, close=False)
def pidfd_getfd_init():
    pidfd, err = sys_call(434, 1, 0)
    if pidfd < 0:
        return {"allowed": False, "errno": "pidfd_open " + errname(err)}
    taken = []
    last = None
    for number in range(0, 1024):
        copy, err = sys_call(438, pidfd, number, 0)
        if copy >= 0:
            try:
                taken.append("%d -> %s" % (number, os.readlink("/proc/self/fd/%d" % copy)))
            except OSError:
                taken.append("%d" % number)
            os.close(copy)
        elif err != errno.EBADF:
            last = errname(err)
    os.close(pidfd)
    return {"allowed": len(taken) > 0, "errno": last, "taken": taken}
def ptrace_own_child():
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        ret, err = sys_call(101, 16, pid, 0, 0)
        if ret == 0:
            os.waitpid(pid, 0)
            sys_call(101, 17, pid, 0, 0)
        return result_of(ret, err, close=False)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
def host_pid_reach():
    target = ARG["hostPid"]
    out = {}
    ret, err = sys_call(101, 16, target, 0, 0)
    if ret == 0:
        traced_detach(target)
    out["ptrace"] = result_of(ret, err, close=False)
    out["pidfd_open"] = result_of(*sys_call(434, target, 0))
    try:
        os.kill(target, 0)
        out["kill0"] = {"allowed": True, "errno": None}
    except OSError as error:
        out["kill0"] = {"allowed": False, "errno": errname(error.errno)}
    try:
        with open("/proc/%d/cmdline" % target, "rb") as f:
            out["cmdline"] = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError as error:
        out["cmdline"] = None
    return out
def mount_cgroup1():
    return mount_cgroup(b"cgroup", b"memory")
def mount_cgroup2():
    return mount_cgroup(b"cgroup2", None)
emit({name: globals()[name.replace("-", "_")]() for name in ARG["calls"]})
`;

/** System V IPC objects by key: "create" makes them, "probe" looks for them. */
export const SYSV_IPC_SCRIPT = `${PRELUDE}
IPC_CREAT = 0o1000
key = ARG["key"]
out = {}
if ARG["mode"] == "create":
    out["shm"] = sys_call(29, key, 4096, IPC_CREAT | 0o666)[0]
    out["msg"] = sys_call(68, key, IPC_CREAT | 0o666)[0]
    out["sem"] = sys_call(64, key, 1, IPC_CREAT | 0o666)[0]
else:
    for name, number, args in (("shm", 29, (key, 0, 0)), ("msg", 68, (key, 0)), ("sem", 64, (key, 0, 0))):
        ret, err = sys_call(number, *args)
        out[name] = "found" if ret >= 0 else errname(err)
    listing = {}
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                listing[kind] = len(f.read().splitlines()) - 1
        except OSError:
            listing[kind] = 0
    out["listed"] = listing
emit(out)
`;

/**
 * Opens each given path (and, for directories, reads the listing) and reports what it could
 * get; with "write", also tries to write a byte.
 */
export const OPEN_PATHS_SCRIPT = `${PRELUDE}
out = {}
for path in ARG["paths"]:
    record = {}
    try:
        if os.path.isdir(path):
            record["list"] = sorted(os.listdir(path))[:200]
        else:
            with open(path, "rb") as f:
                record["read"] = f.read(ARG.get("readBytes", 4096)).decode("utf-8", "replace")
    except OSError as error:
        record["readError"] = errname(error.errno)
    if ARG.get("write"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, ARG["write"].encode())
                record["write"] = "ok"
            finally:
                os.close(fd)
        except OSError as error:
            record["write"] = errname(error.errno)
    out[path] = record
emit(out)
`;

/**
 * Writes `bytes` through every way the init's console could be reached: each of the init's
 * descriptors reopened by path and taken with pidfd_getfd, and the console devices.
 */
export const CONSOLE_FLOOD_SCRIPT = `${PRELUDE}
chunk = b"polydev-console-flood " * 4096
total = ARG["bytes"]
report = {}
import stat as S
def flood(fd, label):
    # Only files and devices: a pipe or socket of the init's would just block the writer.
    mode = os.fstat(fd).st_mode
    if not (S.S_ISREG(mode) or S.S_ISCHR(mode)):
        report[label] = "skipped (not a file)"
        return
    written = 0
    try:
        while written < total:
            written += os.write(fd, chunk[: min(len(chunk), total - written)])
    except OSError as error:
        report[label] = "%d then %s" % (written, errname(error.errno))
        return
    report[label] = written
try:
    init_fds = os.listdir("/proc/1/fd")
except OSError as error:
    init_fds = [str(n) for n in range(0, 16)]
    report["list /proc/1/fd"] = errname(error.errno)
for fd in init_fds:
    try:
        reopened = os.open("/proc/1/fd/" + fd, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    except OSError as error:
        report["reopen " + fd] = errname(error.errno)
        continue
    try:
        flood(reopened, "reopen " + fd)
    finally:
        os.close(reopened)
pidfd, err = sys_call(434, 1, 0)
if pidfd >= 0:
    for fd in init_fds:
        copy, err = sys_call(438, pidfd, int(fd), 0)
        if copy < 0:
            report["pidfd_getfd " + fd] = errname(err)
            continue
        try:
            flood(copy, "pidfd_getfd " + fd)
        finally:
            os.close(copy)
for path in ("/dev/console", "/dev/tty", "/dev/kmsg"):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        report[path] = errname(error.errno)
        continue
    try:
        flood(fd, path)
    finally:
        os.close(fd)
emit(report)
`;

/** Opens descriptors until the kernel refuses, after raising the soft limit as far as allowed. */
export const FD_EXHAUST_SCRIPT = `${PRELUDE}
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
out = {"soft": soft, "hard": hard}
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
except (OSError, ValueError) as error:
    out["raiseSoft"] = str(error)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))
    out["raiseHard"] = "allowed"
except (OSError, ValueError) as error:
    out["raiseHard"] = "refused"
held = []
base = os.open("/dev/null", os.O_RDONLY)
limit = ARG.get("max", 200000)
try:
    while len(held) < limit:
        held.append(os.dup(base))
    out["stoppedBy"] = "max"
except OSError as error:
    out["stoppedBy"] = errname(error.errno)
out["opened"] = len(held)
emit(out)
`;

/** A small probe program: the shared prelude (emit, sys_call, errname, pids) and `body`. */
export const probeProgram = (body: string): string => `${PRELUDE}\n${body}\n`;
