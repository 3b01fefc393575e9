#!/usr/bin/env python3
"""Generate evals/data/pii_zh.jsonl: a synthetic Chinese PII evaluation set for Kefu.

Every value is fictional and produced here from a seeded random.Random(4), so the
output is byte-for-byte reproducible:

    python evals/data/make_pii_zh.py

Rows follow the span format of the presidio_synth_pii_en set:
{"id", "text", "spans": [{"start", "end", "label", "value"}], "lang", "source", "meta"}
with Python string indices (end exclusive). Offsets are computed while filling
templates and checked with text[start:end] == value for every span.

Standard library only. Licence: Apache-2.0 (written for this project).
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

OUT_PATH = Path(__file__).resolve().parent / "pii_zh.jsonl"
SOURCE = "kefu:pii_zh"
REPS_PII = 4  # rows generated per PII template
REPS_NEG = 4  # rows generated per negative template

rng = random.Random(4)

# --------------------------------------------------------------------------
# Synthetic value generators (PII)
# --------------------------------------------------------------------------


def _digits(n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def gen_mobile() -> str:
    d = "1" + rng.choice("3456789") + _digits(9)
    a, b, c = d[:3], d[3:7], d[7:]
    form = rng.choices(range(5), weights=[5, 2, 2, 1, 1])[0]
    return [
        d,
        f"{a} {b} {c}",
        f"{a}-{b}-{c}",
        f"+86 {d}",
        f"0086-{a}-{b}-{c}",
    ][form]


_AREA = ["010", "021", "022", "023", "020", "0755", "0571", "025", "028", "027", "0531", "029", "0512"]


def gen_landline() -> str:
    area = rng.choice(_AREA)
    num = rng.choice("2345678") + _digits(7)
    form = rng.choices(range(2), weights=[3, 1])[0]
    return f"{area}-{num}" if form == 0 else f"({area}){num}"


_REGIONS = [
    "110105",
    "110108",
    "310115",
    "310104",
    "440305",
    "440106",
    "330106",
    "330110",
    "320102",
    "320506",
    "510107",
    "420111",
    "370102",
    "370202",
    "610113",
    "120101",
    "500103",
    "430104",
    "350203",
]
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_ID_CHECK = "10X98765432"


def id_checksum(first17: str) -> str:
    """GB 11643-1999 check character."""
    s = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS))
    return _ID_CHECK[s % 11]


def gen_resident_id(typo: bool = False) -> str:
    start = _dt.date(1950, 1, 1).toordinal()
    end = _dt.date(2005, 12, 31).toordinal()
    birth = _dt.date.fromordinal(rng.randint(start, end))
    first17 = rng.choice(_REGIONS) + birth.strftime("%Y%m%d") + _digits(3)
    check = id_checksum(first17)
    if typo:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return first17 + check


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these positions get doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return luhn_check_digit(number[:-1]) == number[-1]


_CARD_PREFIX = ["6222", "6228", "6217", "6214", "6225", "6226", "6212", "6230", "6216", "6259"]


def gen_bank_card() -> str:
    length = rng.choices([16, 17, 18, 19], weights=[4, 1, 1, 4])[0]
    body = rng.choice(_CARD_PREFIX) + _digits(length - 5)
    num = body + luhn_check_digit(body)
    if rng.random() < 0.55:
        return " ".join(num[i : i + 4] for i in range(0, len(num), 4))
    return num


def gen_passport() -> str:
    return rng.choice("EEG") + _digits(8)


_PLATE_PROV = "京沪粤浙苏川鄂津渝鲁陕湘闽"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def gen_plate() -> str:
    prov = rng.choice(_PLATE_PROV)
    city = rng.choice("ABCDEFGH")
    dot = "·" if rng.random() < 0.3 else ""
    if rng.random() < 0.3:  # new-energy plate, e.g. 粤B·D12345
        return f"{prov}{city}{dot}{rng.choice('DF')}{_digits(5)}"
    chars = [rng.choice("0123456789") for _ in range(5)]
    for _ in range(rng.choice([0, 0, 1, 2])):
        chars[rng.randrange(5)] = rng.choice(_PLATE_LETTERS)
    return f"{prov}{city}{dot}{''.join(chars)}"


_EMAIL_LOCAL = [
    "wangfang",
    "li.jianguo",
    "zhangwei",
    "chen_xiaoli",
    "liuyang",
    "zhao.min",
    "huanglei",
    "zhoujie",
    "wu.tingting",
    "sunhao",
    "ouyang.nana",
    "maxiaoyu",
    "guo_jing",
    "linyifan",
    "hejiahui",
    "luo.ming",
    "xiejun",
    "songyu",
    "tanglan",
    "hanmeimei",
    "lilei",
    "fengqian",
    "dengchao",
    "caoyue",
]
_EMAIL_DOMAIN = ["example.com", "example.cn", "test.org", "mail.example.com"]


def gen_email() -> str:
    local = rng.choice(_EMAIL_LOCAL)
    r = rng.random()
    if r < 0.4:
        local += str(rng.randint(1, 99))
    elif r < 0.6:
        local += str(rng.randint(1975, 2005))
    return f"{local}@{rng.choice(_EMAIL_DOMAIN)}"


def gen_ip() -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return f"192.168.{rng.randint(0, 20)}.{rng.randint(2, 254)}"
    if kind == 1:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
    if kind == 2:
        return f"203.0.113.{rng.randint(1, 254)}"
    if kind == 3:
        return f"198.51.100.{rng.randint(1, 254)}"
    return f"{rng.choice([58, 61, 101, 112, 116, 120, 183, 219, 223])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def gen_url() -> str:
    host = rng.choice(
        [
            "https://www.example.com",
            "https://www.example.com",
            "https://m.example.cn",
            "https://shop.example.com",
            "http://www.example.com",
            "https://kefu.example.org",
        ]
    )
    path = rng.choice(
        [
            f"/account/reset?token={''.join(rng.choice('0123456789abcdef') for _ in range(10))}",
            f"/order/KF{rng.randint(100000, 999999)}",
            f"/item/{rng.randint(10000, 99999)}.html",
            f"/promo/{rng.choice(['1111', 'spring2026', 'vip-day', 'newuser'])}",
            f"/refund/status?id={rng.randint(100000, 999999)}",
            f"/invoice/download?no={rng.randint(10000000, 99999999)}",
            "/help/contact",
            f"/verify?code={''.join(rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ23456789') for _ in range(6))}",
        ]
    )
    return host + path


_SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾田董潘袁蔡蒋余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
)
_COMPOUND = ["欧阳", "司马", "诸葛", "上官", "慕容", "东方", "皇甫"]
_GIVEN1 = list("芳伟娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚辉鹏华飞玲萍红斌宇浩婷雪琳晨")
_GIVEN2 = [
    "建国",
    "建华",
    "志强",
    "晓燕",
    "海燕",
    "子涵",
    "梓轩",
    "雨桐",
    "浩然",
    "欣怡",
    "思远",
    "一鸣",
    "文博",
    "嘉怡",
    "佳琪",
    "宇航",
    "晨曦",
    "俊杰",
    "婉婷",
    "秀英",
    "桂英",
    "娜娜",
    "国强",
    "丽华",
    "志明",
    "春梅",
    "德华",
    "明轩",
    "诗涵",
    "晓东",
    "红霞",
    "立新",
]


def gen_person() -> str:
    surname = rng.choice(_COMPOUND) if rng.random() < 0.08 else rng.choice(_SURNAMES)
    given = rng.choice(_GIVEN2) if rng.random() < 0.55 else rng.choice(_GIVEN1)
    return surname + given


_PLACES = [
    ("北京市", "", ["朝阳区", "海淀区", "东城区", "丰台区"]),
    ("上海市", "", ["浦东新区", "徐汇区", "静安区", "闵行区"]),
    ("天津市", "", ["和平区", "南开区"]),
    ("重庆市", "", ["渝中区", "江北区"]),
    ("广东省", "深圳市", ["南山区", "福田区", "宝安区"]),
    ("广东省", "广州市", ["天河区", "越秀区", "海珠区"]),
    ("浙江省", "杭州市", ["西湖区", "余杭区", "滨江区"]),
    ("浙江省", "宁波市", ["鄞州区"]),
    ("江苏省", "南京市", ["鼓楼区", "玄武区"]),
    ("江苏省", "苏州市", ["姑苏区", "吴中区"]),
    ("四川省", "成都市", ["武侯区", "锦江区", "高新区"]),
    ("湖北省", "武汉市", ["洪山区", "江汉区"]),
    ("山东省", "青岛市", ["市南区", "崂山区"]),
    ("陕西省", "西安市", ["雁塔区", "碑林区"]),
    ("福建省", "厦门市", ["思明区", "湖里区"]),
]
_ROADS = [
    "世纪大道",
    "建国路",
    "科技园南路",
    "中山路",
    "人民路",
    "解放路",
    "学院路",
    "文一西路",
    "天府大道",
    "长江路",
    "滨江大道",
    "和平街",
    "光明路",
    "东风路",
    "新华路",
    "青年路",
    "幸福路",
    "迎宾大道",
    "南京西路",
    "深南大道",
    "香山路",
    "珠江路",
    "金沙江路",
]
_ESTATES = ["阳光花园", "翠湖小区", "锦绣家园", "万科城", "金地名苑", "碧水湾", "枫林苑", "华府天地"]


def gen_location() -> str:
    prov, city, districts = rng.choice(_PLACES)
    district = rng.choice(districts)
    head = prov + city + district
    if city and rng.random() < 0.35:  # often people drop the province
        head = city + district
    tail = f"{rng.choice(_ROADS)}{rng.randint(1, 999)}号"
    r = rng.random()
    if r < 0.25:
        tail += f"{rng.randint(1, 12)}单元{rng.randint(1, 30)}{rng.randint(1, 6):02d}室"
    elif r < 0.45:
        tail += f"{rng.choice(_ESTATES)}{rng.randint(1, 20)}栋{rng.randint(1, 30)}{rng.randint(1, 6):02d}"
    elif r < 0.6:
        tail += f"{rng.randint(1, 9)}号楼{rng.randint(1, 20)}层"
    return head + tail


# --------------------------------------------------------------------------
# Look-alike, non-PII fillers (never labelled)
# --------------------------------------------------------------------------


def gen_order() -> str:
    return f"KF{rng.randint(100000, 999999)}"


def gen_price() -> str:
    v = rng.choice([39, 59, 89, 129, 199, 299, 399, 599, 899, 1299, 1999, 2599, 3499, 4999, 12999])
    form = rng.randrange(6)
    if form == 0:
        return f"¥{v}.00"
    if form == 1:
        return f"{v}元"
    if form == 2:
        return f"{v:,}元"
    if form == 3:
        return f"￥{v - 0.1:.1f}"
    if form == 4:
        return f"{v}块"
    return f"¥{v:,}"


def gen_date() -> str:
    d = _dt.date.fromordinal(rng.randint(_dt.date(2025, 1, 1).toordinal(), _dt.date(2026, 12, 31).toordinal()))
    form = rng.randrange(4)
    if form == 0:
        return d.isoformat()
    if form == 1:
        return f"{d.month}月{d.day}日"
    if form == 2:
        return f"{d.year}年{d.month}月{d.day}日"
    return f"{d.month}/{d.day}"


def gen_time() -> str:
    h, m = rng.randint(8, 21), rng.choice([0, 15, 30, 45])
    form = rng.randrange(3)
    if form == 0:
        return f"{h:02d}:{m:02d}"
    if form == 1:
        return f"{h}:{m:02d}"
    return f"{'上午' if h < 12 else '下午'}{h if h <= 12 else h - 12}点" + ("半" if m == 30 else "")


def gen_sf() -> str:
    return "SF" + _digits(13)


def gen_jd() -> str:
    return "JDVA" + _digits(11)


def gen_track() -> str:
    return rng.choice([gen_sf, gen_jd, lambda: "YT" + _digits(13), lambda: "75" + _digits(12)])()


def gen_qty() -> str:
    return f"{rng.randint(2, 20)}{rng.choice(['件', '台', '瓶', '盒', '个', '箱', '双'])}"


_MODELS = [
    "Lumo Air Pro 2",
    "X200",
    "Lumo Buds 3",
    "KF-S10",
    "Nova 7 Max",
    "H2O-500",
    "Lumo Watch SE",
    "X200 Plus",
    "KF-B35 蓝牙音箱",
    "Air Fryer 5L",
    "Q7 扫地机器人",
]


def gen_model() -> str:
    return rng.choice(_MODELS)


def gen_pct() -> str:
    return rng.choice(["15%", "8.5%", "20%", "5%", "30%", "12.5%", "50%"])


def gen_coupon() -> str:
    return rng.choice(["KFVIP2026", "KFNEW50", "SPRING2026", "KF11DOUBLE", "KFMEMBER88", "FREESHIP30"])


def gen_bank() -> str:
    return rng.choice(["招商银行", "工商银行", "建设银行", "中国银行", "农业银行", "交通银行", "浦发银行"])


def gen_tail() -> str:
    return _digits(4)


def gen_agent() -> str:
    return str(rng.randint(1000, 9999))


def gen_rma() -> str:
    return f"RMA{rng.randint(2025, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{_digits(3)}"


def gen_pickup() -> str:
    return rng.choice([_digits(6), f"{rng.randint(1, 9)}-{rng.randint(1, 9)}-{_digits(4)}"])


def gen_points() -> str:
    return f"{rng.randint(1, 99):,}{rng.choice([',', ''])}{rng.randint(0, 999):03d}"


def gen_sku() -> str:
    return f"SKU-{rng.randint(100000, 999999)}-{rng.choice(['BLK', 'WHT', 'RED', 'XL', 'M'])}"


def gen_capacity() -> str:
    return rng.choice(["5000mAh", "4500mAh", "3000W", "1200W", "64GB", "256GB", "1TB", "500ml"])


def gen_hours() -> str:
    return str(rng.choice([8, 12, 24, 36, 48, 72]))


def gen_warranty() -> str:
    return rng.choice(["一年", "两年", "12个月", "24个月", "180天"])


def gen_color() -> str:
    return rng.choice(["黑色", "白色", "雾霾蓝", "星光银", "玫瑰金"])


def gen_res() -> str:
    return rng.choice(["1920x1080", "2560×1440", "3840x2160"])


def gen_weight() -> str:
    return rng.choice(["2.5kg", "500g", "1.2公斤", "15斤"])


# placeholder -> (label or None, generator)
FILLERS = {
    "NAME": ("PERSON", gen_person),
    "MOBILE": ("CN_MOBILE", gen_mobile),
    "LANDLINE": ("CN_LANDLINE", gen_landline),
    "ID": ("CN_RESIDENT_ID", None),  # handled specially (typo rows)
    "CARD": ("CN_BANK_CARD", gen_bank_card),
    "PASSPORT": ("CN_PASSPORT", gen_passport),
    "PLATE": ("CN_LICENSE_PLATE", gen_plate),
    "EMAIL": ("EMAIL_ADDRESS", gen_email),
    "IP": ("IP_ADDRESS", gen_ip),
    "URL": ("URL", gen_url),
    "ADDR": ("LOCATION", gen_location),
    # non-PII look-alikes
    "ORDER": (None, gen_order),
    "PRICE": (None, gen_price),
    "DATE": (None, gen_date),
    "TIME": (None, gen_time),
    "SF": (None, gen_sf),
    "JD": (None, gen_jd),
    "TRACK": (None, gen_track),
    "QTY": (None, gen_qty),
    "MODEL": (None, gen_model),
    "PCT": (None, gen_pct),
    "COUPON": (None, gen_coupon),
    "BANK": (None, gen_bank),
    "TAIL": (None, gen_tail),
    "AGENT": (None, gen_agent),
    "RMA": (None, gen_rma),
    "PICKUP": (None, gen_pickup),
    "POINTS": (None, gen_points),
    "SKU": (None, gen_sku),
    "CAP": (None, gen_capacity),
    "HOURS": (None, gen_hours),
    "WARRANTY": (None, gen_warranty),
    "COLOR": (None, gen_color),
    "RES": (None, gen_res),
    "WEIGHT": (None, gen_weight),
}

# --------------------------------------------------------------------------
# Templates: (family, template). {X} placeholders are filled from FILLERS.
# --------------------------------------------------------------------------

PII_TEMPLATES = [
    # delivery address changes
    ("address_change", "你好，我想把订单{ORDER}的收货地址改成{ADDR}，收件人{NAME}，电话{MOBILE}。"),
    ("address_change", "收货地址填错了，麻烦改为{ADDR}，谢谢！"),
    ("address_change", "我搬家了，新地址是{ADDR}，收件人换成{NAME}。"),
    ("address_change", "能不能帮我把地址从{ADDR}改到{ADDR}？快递还没发吧？"),
    ("address_change", "请寄到{ADDR}，{NAME}收，联系电话{LANDLINE}。"),
    ("address_change", "收件人：{NAME}，手机：{MOBILE}，地址：{ADDR}"),
    ("address_change", "我是{NAME}，订单{ORDER}的地址门牌号写错了，正确的是{ADDR}。"),
    ("address_change", "快递员说找不到地址，麻烦让他打我电话{MOBILE}，我在{ADDR}。"),
    ("address_change", "收件信息：{NAME}/{MOBILE}/{ADDR}"),
    # invoices
    ("invoice", "我要开增值税普通发票，抬头写个人{NAME}，发票发到邮箱{EMAIL}就行。"),
    ("invoice", "纸质发票请寄到{ADDR}，收票人{NAME}，电话{LANDLINE}。"),
    ("invoice", "电子发票一直没收到，我的邮箱是{EMAIL}，订单号{ORDER}。"),
    ("invoice", "公司报销需要发票，联系人{NAME}，座机{LANDLINE}，邮箱{EMAIL}。"),
    ("invoice", "发票上的名字写错了，应该是{NAME}不是{NAME}，金额{PRICE}没问题。"),
    ("invoice", "麻烦把{DATE}那笔订单的发票重新发到{EMAIL}，之前那个邮箱不用了。"),
    ("invoice", "发票需要填纳税人信息吗？个人的话身份证号是{ID}。"),
    ("invoice", "发票下载链接{URL}提示无权限，能重新发一下吗？"),
    # account recovery / security
    ("account_recovery", "我的账号登不上了，注册手机号是{MOBILE}，能帮我找回吗？"),
    ("account_recovery", "手机号换了，原来绑定的是{MOBILE}，新号码是{MOBILE}。"),
    ("account_recovery", "找回密码的邮件发到{EMAIL}了吗？我等了{TIME}到现在都没收到。"),
    ("account_recovery", "重置密码的链接{URL}打不开，提示已过期。"),
    ("account_recovery", "账号实名认证用的身份证号是{ID}，姓名{NAME}，麻烦核实一下。"),
    ("account_recovery", "我刚才在{IP}这个IP登录被拦截了，是不是触发风控了？"),
    ("account_recovery", "系统提示异地登录，登录IP是{IP}，不是我本人操作！"),
    ("account_recovery", "我是用护照注册的，护照号{PASSPORT}，名字{NAME}，现在账号被冻结了。"),
    ("account_recovery", "你们发的验证链接是{URL}，这个是官方的吗？"),
    ("account_recovery", "账号绑定的邮箱{EMAIL}已经不用了，想换成{EMAIL}。"),
    ("account_recovery", "我在{IP}和{IP}两个地方都登录过，现在账号被锁了。"),
    ("account_recovery", "我的账户邮箱{EMAIL}，手机{MOBILE}，平时登录IP一直是{IP}。"),
    # refunds to a bank card
    ("refund", "退款请退到我的银行卡，卡号{CARD}，开户名{NAME}。"),
    ("refund", "原路退款失败了，能退到储蓄卡{CARD}吗？是{BANK}的。"),
    ("refund", "我的银行卡号是{CARD}，退款{PRICE}什么时候能到账？"),
    ("refund", "退款账户：{BANK}储蓄卡{CARD}，户名{NAME}，手机{MOBILE}。"),
    ("refund", "卡号{CARD}已经注销了，麻烦改退到{CARD}这张银行卡。"),
    ("refund", "客服说要提供银行卡信息，卡号：{CARD}，持卡人{NAME}，身份证{ID}。"),
    ("refund", "退款{PRICE}到账了吗？我绑定的储蓄卡是{CARD}。"),
    ("refund", "储蓄卡{CARD}被扣了两次款，订单{ORDER}，麻烦查一下。"),
    ("refund", "我替我妈{NAME}申请退款，她的身份证号是{ID}，退到她的银行卡{CARD}。"),
    ("refund", "退款进度可以在{URL}查看吗？页面一直转圈。"),
    # complaints
    ("complaint", "快递员态度太差了，我叫{NAME}，电话{MOBILE}，你们必须给我一个说法！"),
    ("complaint", "我要投诉！订单{ORDER}的东西坏了，客服{NAME}一直不回复。"),
    ("complaint", "送货的车牌号是{PLATE}，司机把包裹扔在门口就走了。"),
    ("complaint", "昨天送货的司机开{PLATE}的车，在小区里乱停，请处理。"),
    ("complaint", "你们的网站{URL}一直报错，我付款了订单却没生成。"),
    ("complaint", "我已经打了好几次{LANDLINE}都没人接，到底怎么回事？"),
    ("complaint", "我在{ADDR}楼下等了一下午，快递都没来。"),
    ("complaint", "有人发给我一个{URL}说可以领补偿，是骗子吧？"),
    # callbacks
    ("callback", "请尽快回电，我的手机号是{MOBILE}，{TIME}以后都方便。"),
    ("callback", "麻烦让售后{TIME}前给我回个电话：{LANDLINE}。"),
    ("callback", "能不能打我家里座机{LANDLINE}？手机{MOBILE}信号不好。"),
    ("callback", "我是{NAME}，请回拨{MOBILE}，谢谢。"),
    ("callback", "如果打不通就发邮件到{EMAIL}，或者打我同事{NAME}的电话{MOBILE}。"),
    ("callback", "公司前台电话{LANDLINE}，快递到了请打这个号码找{NAME}。"),
    ("callback", "您好{NAME}，您的工单已受理，我们将通过{MOBILE}与您联系。"),
    ("callback", "已为{NAME}女士登记回访，电话{LANDLINE}，邮箱{EMAIL}。"),
    # identity verification / customs
    ("identity", "核对一下身份信息：{NAME}，身份证号码{ID}。"),
    ("identity", "跨境商品清关需要身份证号，我的是{ID}，收件人{NAME}。"),
    ("identity", "海关要求实名，收件人{NAME}，身份证{ID}，手机{MOBILE}。"),
    ("identity", "身份证号填错了一位，正确的是{ID}。"),
    ("identity", "我是外籍人士，没有身份证，可以用护照吗？护照号码{PASSPORT}。"),
    ("identity", "清关用护照号{PASSPORT}可以吗？姓名拼音和护照上一致。"),
    ("identity", "护照{PASSPORT}已经过期了，新的护照号是{PASSPORT}，请更新清关信息。"),
    ("identity", "国际快递需要护照信息：{NAME}，护照号{PASSPORT}。"),
    ("identity", "我的护照号码是{PASSPORT}，用来办理跨境退税，结果发到{EMAIL}。"),
    ("identity", "代购订单的清关人是{NAME}，护照号{PASSPORT}，电话{MOBILE}。"),
    # store pickup / vehicles
    ("pickup", "我开车来门店自提，车牌{PLATE}，可以帮我放到停车场吗？"),
    ("pickup", "自提登记一下车牌号{PLATE}，提货人{NAME}。"),
    ("pickup", "大件家具送货的货车是{PLATE}吗？我在小区门口等。"),
    ("pickup", "我的车是{PLATE}，预约了{DATE}{TIME}上门安装行车记录仪。"),
    ("pickup", "帮我登记停车：车牌{PLATE}，联系人手机{MOBILE}。"),
    ("pickup", "司机说他的车牌是{PLATE}，电话{MOBILE}，但是一直没到。"),
    ("pickup", "请登记：车主{NAME}，车牌{PLATE}，身份证{ID}。"),
    # web / network issues
    ("web", "我把商品链接{URL}发给你了，这个还有货吗？"),
    ("web", "订单页面{URL}里显示的价格和结算时不一样。"),
    ("web", "我家宽带IP是{IP}，每次打开你们网站都提示访问受限。"),
    ("web", "麻烦查一下日志，{DATE}{TIME}左右从{IP}发起的支付是不是失败了？"),
    ("web", "活动页{URL}领不了券，提示{COUPON}已失效。"),
    ("web", "我在公司网络{IP}下的单，收货地址是{ADDR}。"),
    ("web", "后台显示登录地址{IP}，可我人在{ADDR}，不可能是我。"),
    ("web", "我用的代理出口IP是{IP}，是不是因为这个才下不了单？"),
    # mixed
    ("delivery", "帮我查一下寄到{ADDR}的包裹，运单号{TRACK}。"),
    ("delivery", "礼品寄给我朋友{NAME}，地址{ADDR}，她电话{MOBILE}。"),
    ("delivery", "售后上门取件，联系{NAME}，电话{LANDLINE}，地址{ADDR}。"),
]

NEG_TEMPLATES = [
    ("neg_order", "我的订单号是{ORDER}，什么时候发货？"),
    ("neg_order", "订单号{ORDER}显示已签收，但我没收到。"),
    ("neg_order", "订单{ORDER}和{ORDER}能合并发货吗？"),
    ("neg_order", "我想退{ORDER}里的{MODEL}，退款{PRICE}多久到账？"),
    ("neg_price", "这款{MODEL}现在多少钱？页面上写的是{PRICE}。"),
    ("neg_price", "为什么昨天还是{PRICE}，今天就涨到{PRICE}了？"),
    ("neg_price", "活动说满{PRICE}包邮，再叠加{PCT}的折扣对吗？"),
    ("neg_price", "发票金额应该是{PRICE}，你们开成了{PRICE}。"),
    ("neg_price", "我卡尾号{TAIL}付款的{PRICE}被扣了两次。"),
    ("neg_date", "我{DATE}下的单，到现在还没发货。"),
    ("neg_date", "能不能{DATE}{TIME}之后再送？白天家里没人。"),
    ("neg_date", "你们{TIME}到{TIME}有人工客服吗？"),
    ("neg_date", "客服工号{AGENT}说{DATE}前给我答复。"),
    ("neg_tracking", "顺丰单号{SF}，物流三天没更新了。"),
    ("neg_tracking", "京东快递单号{JD}查不到信息。"),
    ("neg_tracking", "运单号{TRACK}显示{DATE}{TIME}已派送。"),
    ("neg_tracking", "快递柜取件码{PICKUP}，但是柜子打不开。"),
    ("neg_quantity", "我买了{QTY}，只收到了一半，包裹重量才{WEIGHT}。"),
    ("neg_quantity", "请问{MODEL}有没有{COLOR}的？库存还有{QTY}吗？"),
    ("neg_product", "{MODEL}和{MODEL}有什么区别？"),
    ("neg_product", "电池容量{CAP}，续航真的有{HOURS}小时吗？"),
    ("neg_product", "保修期是{WARRANTY}，我{DATE}买的{MODEL}现在坏了。"),
    ("neg_product", "商品编号{SKU}的尺码表在哪里？"),
    ("neg_product", "这台显示器分辨率是{RES}吗？{PRICE}的价格有点贵。"),
    ("neg_coupon", "优惠券{COUPON}用不了，提示不满足条件。"),
    ("neg_coupon", "我的积分是{POINTS}，能换{COUPON}吗？"),
    ("neg_coupon", "双十一零点开始，{COUPON}可以叠加{PCT}的优惠吗？"),
    ("neg_return", "换货申请提交了，编号{RMA}，什么时候审核？"),
]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(template: str, id_typo: bool) -> tuple[str, list[dict]]:
    parts = _PLACEHOLDER.split(template)
    text, spans = "", []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            text += part
            continue
        label, gen = FILLERS[part]
        value = gen_resident_id(typo=id_typo) if part == "ID" else gen()
        start = len(text)
        text += value
        if label is not None:
            spans.append({"start": start, "end": len(text), "label": label, "value": value})
    for sp in spans:
        assert text[sp["start"] : sp["end"]] == sp["value"], (text, sp)
    return text, spans


_CONTEXT = {"CN_BANK_CARD": ("银行卡", "卡号", "储蓄卡"), "CN_PASSPORT": ("护照",)}


def check_row(row: dict) -> None:
    text = row["text"]
    for sp in row["spans"]:
        assert text[sp["start"] : sp["end"]] == sp["value"], row
        v, label = sp["value"], sp["label"]
        if label == "CN_BANK_CARD":
            digits = v.replace(" ", "")
            assert digits.startswith("62") and 16 <= len(digits) <= 19 and luhn_ok(digits), v
            window = text[max(0, sp["start"] - 12) : sp["end"] + 12]
            assert any(w in window for w in _CONTEXT[label]), text
        elif label == "CN_PASSPORT":
            assert re.fullmatch(r"[EG]\d{8}", v), v
            assert "护照" in text[max(0, sp["start"] - 12) : sp["end"] + 12], text
        elif label == "CN_RESIDENT_ID":
            assert len(v) == 18
            ok = id_checksum(v[:17]) == v[17]
            assert ok == (row["meta"]["kind"] != "id_typo"), (v, row["meta"])
    if not row["spans"]:
        # negatives must not accidentally contain mobile-like or email-like strings
        assert not re.search(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?!\d)", text), text
        assert "@" not in text, text


def main() -> int:
    rows = []
    seen_text: set[str] = set()

    def fill_unique(tpl: str, typo: bool) -> tuple[str, list[dict]]:
        for _ in range(50):  # redraw values until the sentence is new
            text, spans = fill(tpl, typo)
            if text not in seen_text:
                seen_text.add(text)
                return text, spans
        raise RuntimeError(f"cannot draw a unique row for {tpl!r}")

    id_rows = 0
    for kind, tpl in PII_TEMPLATES:
        for _ in range(REPS_PII):
            typo = False
            if "{ID}" in tpl:
                typo = id_rows % 9 == 4  # ~10% of ID rows carry a wrong check character
                id_rows += 1
            text, spans = fill_unique(tpl, typo)
            rows.append({"text": text, "spans": spans, "meta": {"kind": "id_typo" if typo else kind}})
    for kind, tpl in NEG_TEMPLATES:
        for _ in range(REPS_NEG):
            text, spans = fill_unique(tpl, False)
            assert not spans
            rows.append({"text": text, "spans": [], "meta": {"kind": kind}})

    rng.shuffle(rows)
    out = []
    seen = set()
    for i, r in enumerate(rows):
        assert r["text"] not in seen, r["text"]
        seen.add(r["text"])
        row = {
            "id": f"kefu_pii_zh:{i:05d}",
            "text": r["text"],
            "spans": r["spans"],
            "lang": "zh",
            "source": SOURCE,
            "meta": r["meta"],
        }
        check_row(row)
        out.append(row)

    labels = Counter(sp["label"] for r in out for sp in r["spans"])
    negatives = sum(1 for r in out if not r["spans"])
    n_templates = len({t for _, t in PII_TEMPLATES} | {t for _, t in NEG_TEMPLATES})
    assert len(out) >= 320, len(out)
    assert negatives >= 80, negatives
    assert n_templates >= 60, n_templates
    for lab in (
        "CN_MOBILE",
        "CN_LANDLINE",
        "CN_RESIDENT_ID",
        "CN_BANK_CARD",
        "CN_PASSPORT",
        "CN_LICENSE_PLATE",
        "EMAIL_ADDRESS",
        "IP_ADDRESS",
        "URL",
        "PERSON",
        "LOCATION",
    ):
        assert labels[lab] >= 30, (lab, labels[lab])

    with OUT_PATH.open("w", encoding="utf-8") as f:
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    print(f"wrote {len(out)} rows to {OUT_PATH} ({n_templates} templates, {negatives} negative rows)")
    for lab, c in sorted(labels.items()):
        print(f"  {lab:18s} {c}")
    print(f"  id_typo rows: {sum(1 for r in out if r['meta']['kind'] == 'id_typo')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
